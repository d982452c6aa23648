"""The small page at `GET /`: drop an image, see the overlay and the verdict.

Self-contained (inline CSS and script, no external asset), so it works on an air-gapped station; results
are written with textContent, never as HTML, so a phrase or file name cannot inject markup.
"""
from __future__ import annotations

from html import escape

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>iapas inspect</title>
<style>
 body { font: 15px/1.4 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d1f23; }
 header { background: #22262e; color: #fff; padding: 10px 18px; font-size: 18px; }
 main { padding: 16px 18px; max-width: 1100px; }
 #drop { border: 2px dashed #8a93a3; border-radius: 8px; padding: 26px; text-align: center; background: #fff; margin: 12px 0; }
 #drop.over { border-color: #2b6cb0; background: #ebf4ff; }
 #verdict { font-weight: 700; font-size: 22px; padding: 2px 10px; border-radius: 4px; color: #fff; }
 #verdict.defect { background: #c53030; } #verdict.ok { background: #2f855a; }
 #overlay { max-width: 100%; margin-top: 10px; border: 1px solid #ccd; }
 #error { color: #c53030; font-weight: 600; }
 table { border-collapse: collapse; margin-top: 8px; } td, th { padding: 2px 8px; border-bottom: 1px solid #dde; text-align: left; }
</style></head>
<body data-state="idle">
<header>iapas &mdash; inspect an image</header>
<main>
 <label>Line <select id="line">__OPTIONS__</select></label>
 <label id="token-row" __TOKEN_HIDDEN__> &nbsp; Token <input id="token" type="password" autocomplete="off"></label>
 <div id="drop">Drop an image here, or <input id="file" type="file" accept="image/*"></div>
 <p id="status" role="status"></p>
 <p id="error" role="alert"></p>
 <section id="result" hidden>
  <p><span id="verdict"></span> &nbsp; image score <b id="score"></b> (threshold <span id="threshold"></span>),
   profile <span id="profile"></span>, <span id="nregions"></span> region(s), <span id="ms"></span> ms</p>
  <table><thead><tr><th>phrase</th><th>score</th><th>box (x0, y0, x1, y1)</th></tr></thead><tbody id="boxes"></tbody></table>
  <img id="overlay" alt="overlay of the defect map on the image">
 </section>
</main>
<script>
const $ = (id) => document.getElementById(id);
function show(state, message) { document.body.dataset.state = state; $('status').textContent = message || ''; }
async function inspect(file) {
  $('error').textContent = ''; $('result').hidden = true; show('busy', 'inspecting ' + file.name + ' ...');
  const form = new FormData(); form.append('file', file, file.name);
  const headers = {}; const token = $('token').value.trim();
  if (token) headers['Authorization'] = 'Bearer ' + token;
  const url = '/v1/inspect?overlay=true&line=' + encodeURIComponent($('line').value);
  let response, body;
  try { response = await fetch(url, {method: 'POST', body: form, headers: headers}); body = await response.json(); }
  catch (e) { show('error', ''); $('error').textContent = 'no answer from the server: ' + e; return; }
  if (!response.ok) { show('error', ''); $('error').textContent = response.status + ': ' + (body.error || JSON.stringify(body)); return; }
  $('verdict').textContent = body.verdict; $('verdict').className = body.verdict;
  $('score').textContent = body.image_score.toFixed(3); $('threshold').textContent = body.threshold.toFixed(3);
  $('profile').textContent = body.profile; $('nregions').textContent = body.regions.length;
  $('ms').textContent = Math.round(body.timing.total_ms);
  const rows = $('boxes'); rows.replaceChildren();
  for (const box of body.boxes) {
    const tr = document.createElement('tr');
    for (const v of [box.phrase, box.score.toFixed(3), box.xyxy.map((x) => Math.round(x)).join(', ')]) {
      const td = document.createElement('td'); td.textContent = v; tr.appendChild(td);
    }
    rows.appendChild(tr);
  }
  $('overlay').onload = () => show('done', file.name);
  $('overlay').src = 'data:image/png;base64,' + body.overlay.data;
  $('result').hidden = false;
}
async function loadLines() {  // with a token, the line names come from the API once the token is typed
  const token = $('token').value.trim(); if (!token) return;
  try {
    const response = await fetch('/v1/lines', {headers: {'Authorization': 'Bearer ' + token}});
    if (!response.ok) { $('error').textContent = response.status + ': ' + ((await response.json()).error || ''); return; }
    const select = $('line'); const chosen = select.value; select.replaceChildren();
    for (const item of (await response.json()).lines) {
      const option = document.createElement('option'); option.value = option.textContent = item.line; select.appendChild(option);
    }
    if (chosen) select.value = chosen;
    $('error').textContent = '';
  } catch (e) { $('error').textContent = 'no answer from the server: ' + e; }
}
$('token').addEventListener('change', loadLines);
$('file').addEventListener('change', (e) => { if (e.target.files.length) inspect(e.target.files[0]); });
const drop = $('drop');
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over');
  if (e.dataTransfer.files.length) inspect(e.dataTransfer.files[0]); });
</script>
</body></html>
"""


def page_html(lines: list[str], needs_token: bool) -> str:
    """The page with the server's lines in the selector (and a token field when the API needs one)."""
    options = "".join(f'<option value="{escape(n)}">{escape(n)}</option>' for n in lines)
    return _PAGE.replace("__OPTIONS__", options).replace("__TOKEN_HIDDEN__", "" if needs_token else "hidden")

"""HTML/CSS/JS of the self-contained viewer (a small hand-written WebGL 1 renderer).

Kept in a Python module (not a data file) so it always ships with the package. ``__DATA__``
and ``__TITLE__`` are replaced by :func:`meeg_inverse.viz.viewer.write_viewer_html`.
"""

TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>__TITLE__</title>
<script>
// Error capture first, so that failures of later scripts are recorded (and visible to tests).
window.__viewerErrors = [];
(function () {
  var origError = console.error;
  console.error = function () {
    window.__viewerErrors.push(Array.prototype.map.call(arguments, String).join(' '));
    return origError.apply(console, arguments);
  };
  window.addEventListener('error', function (e) {
    window.__viewerErrors.push('error: ' + (e.message || e) + ' @' + (e.lineno || '?'));
  });
  window.addEventListener('unhandledrejection', function (e) {
    window.__viewerErrors.push('unhandled rejection: ' + e.reason);
  });
})();
</script>
<style>
  :root { --fg:#1d232b; --muted:#5b6573; --line:#d9dee5; --accent:#0f6cbd; }
  * { box-sizing: border-box; }
  html, body { margin:0; height:100%; overflow:hidden; font-family: "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; color:var(--fg); background:#f6f7f9; }
  #app { display:grid; width:100vw; grid-template-columns: minmax(0,1fr) 330px; grid-template-rows: minmax(0,1fr) 230px; height:100vh; }
  #view { position:relative; grid-column:1; grid-row:1; background:#fff; border-right:1px solid var(--line); border-bottom:1px solid var(--line); min-height:300px; }
  #gl { width:100%; height:100%; display:block; cursor:grab; touch-action:none; }
  #gl.dragging { cursor:grabbing; }
  #hud { position:absolute; left:12px; top:10px; pointer-events:none; }
  #hud h1 { font-size:17px; margin:0 0 2px 0; }
  #hud .sub { font-size:13px; color:var(--muted); }
  #timebig { position:absolute; right:14px; top:10px; font-size:20px; font-weight:bold; pointer-events:none; }
  #hint { position:absolute; left:12px; bottom:8px; font-size:12px; color:var(--muted); pointer-events:none; }
  #nogl { display:none; position:absolute; inset:0; align-items:center; justify-content:center; text-align:center; color:#8a1c1c; font-size:15px; padding:30px; }
  #side { grid-column:2; grid-row:1 / span 2; overflow:auto; padding:12px 14px; background:#fbfbfc; }
  #side h2 { font-size:13px; text-transform:uppercase; letter-spacing:.05em; color:var(--muted); margin:14px 0 6px; }
  #side h2:first-child { margin-top:0; }
  .row { display:flex; align-items:center; gap:8px; margin:4px 0; font-size:13px; }
  input[type=range] { flex:1; }
  button { font:inherit; font-size:12px; padding:3px 9px; border:1px solid var(--line); background:#fff; border-radius:4px; cursor:pointer; }
  button:hover { border-color:var(--accent); }
  #cbar { height:14px; border:1px solid #999; border-radius:2px; }
  #cbarlab { display:flex; justify-content:space-between; font-size:11px; color:var(--muted); }
  #srclist { width:100%; border-collapse:collapse; font-size:12px; }
  #srclist td { padding:3px 4px; border-bottom:1px solid #eceff3; }
  #srclist tr { cursor:pointer; }
  #srclist tr:hover { background:#eef4fb; }
  #srclist tr.sel { background:#dbe9f8; font-weight:bold; }
  .sw { display:inline-block; width:10px; height:10px; border-radius:50%; border:1px solid #555; }
  #tcwrap { grid-column:1; grid-row:2; background:#fff; position:relative; }
  #tc { width:100%; height:100%; display:block; }
  #tclabel { position:absolute; left:64px; top:6px; font-size:13px; font-weight:bold; }
</style>
</head>
<body>
<div id="app">
  <div id="view">
    <canvas id="gl"></canvas>
    <div id="hud"><h1 id="ttl"></h1><div class="sub" id="subttl"></div></div>
    <div id="timebig"></div>
    <div id="hint">drag: rotate · shift/right-drag: pan · wheel: zoom · click a source: its time course</div>
    <div id="nogl">WebGL is not available in this browser: the 3D view is disabled.<br>Pick sources in the list on the right to see their time courses.</div>
  </div>
  <div id="tcwrap"><canvas id="tc"></canvas><div id="tclabel"></div></div>
  <div id="side">
    <h2>Time</h2>
    <div class="row"><button id="play" title="play / pause">&#9654;</button><input id="time" type="range" min="0" max="0" value="0" step="1"><span id="tval" style="min-width:72px;text-align:right"></span></div>
    <h2>Amplitude</h2>
    <div id="cbar"></div><div id="cbarlab"><span>0</span><span id="cbmid"></span><span id="cbmax"></span></div>
    <div class="row" style="color:var(--muted);font-size:12px">sphere size and colour: source amplitude (nA·m)</div>
    <h2>View</h2>
    <div class="row" id="viewbtns"></div>
    <div class="row" id="meshtoggles"></div>
    <div class="row">brain opacity <input id="opacity" type="range" min="0.05" max="1" step="0.05"></div>
    <h2 id="srchead">Sources</h2>
    <table id="srclist"></table>
  </div>
</div>
<pre id="autotest-result" style="display:none"></pre>
<script id="viewer-data" type="application/json">__DATA__</script>
<script>
(function () {
'use strict';
var D = JSON.parse(document.getElementById('viewer-data').textContent);
var CMAP = [[0.478,0,0.071],[0.784,0.063,0.180],[0.941,0.420,0.118],[1,0.698,0.110],[1,0.953,0.361]];
function cmap(f) {
  f = Math.max(0, Math.min(1, f)) * (CMAP.length - 1);
  var i = Math.min(Math.floor(f), CMAP.length - 2), t = f - i, a = CMAP[i], b = CMAP[i + 1];
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
}
function css(c) { return 'rgb(' + c.map(function (v) { return Math.round(255 * v); }).join(',') + ')'; }
function b64(s, Type) {
  var bin = atob(s), n = bin.length, u8 = new Uint8Array(n);
  for (var i = 0; i < n; i++) u8[i] = bin.charCodeAt(i);
  return new Type(u8.buffer);
}

// ------------------------------------------------------------------ state
var times = D.times, nT = times.length, tIdx = D.t0, selected = -1, playing = false;
var sources = D.sources, vmax = D.vmax > 0 ? D.vmax : 1;
var meshes = D.meshes.map(function (m) {
  return { name: m.name, label: m.label, visible: true,
           pos: b64(m.positions, Float32Array), idx: b64(m.indices, Uint32Array),
           grey: b64(m.grey, Uint8Array) };
});
var opacity = D.opacity;

// ------------------------------------------------------------------ math (column-major 4x4)
function perspective(fovy, aspect, near, far) {
  var f = 1 / Math.tan(fovy / 2), nf = 1 / (near - far);
  return [f / aspect,0,0,0, 0,f,0,0, 0,0,(far + near) * nf,-1, 0,0,2 * far * near * nf,0];
}
function sub(a, b) { return [a[0] - b[0], a[1] - b[1], a[2] - b[2]]; }
function cross(a, b) { return [a[1]*b[2]-a[2]*b[1], a[2]*b[0]-a[0]*b[2], a[0]*b[1]-a[1]*b[0]]; }
function dot(a, b) { return a[0]*b[0] + a[1]*b[1] + a[2]*b[2]; }
function norm(a) { var l = Math.hypot(a[0], a[1], a[2]) || 1; return [a[0]/l, a[1]/l, a[2]/l]; }
function lookAt(eye, c, up) {
  var z = norm(sub(eye, c)), x = norm(cross(up, z)), y = cross(z, x);
  return [x[0],y[0],z[0],0, x[1],y[1],z[1],0, x[2],y[2],z[2],0, -dot(x,eye),-dot(y,eye),-dot(z,eye),1];
}
function mul(a, b) {
  var o = new Array(16);
  for (var i = 0; i < 4; i++) for (var j = 0; j < 4; j++) {
    var s = 0; for (var k = 0; k < 4; k++) s += a[k * 4 + j] * b[i * 4 + k]; o[i * 4 + j] = s;
  }
  return o;
}
function xform(m, p) {
  var x = p[0], y = p[1], z = p[2];
  return [m[0]*x+m[4]*y+m[8]*z+m[12], m[1]*x+m[5]*y+m[9]*z+m[13], m[2]*x+m[6]*y+m[10]*z+m[14], m[3]*x+m[7]*y+m[11]*z+m[15]];
}

// ------------------------------------------------------------------ camera
var bbMin = [1e9, 1e9, 1e9], bbMax = [-1e9, -1e9, -1e9];
meshes.forEach(function (m) {
  for (var i = 0; i < m.pos.length; i += 3) for (var k = 0; k < 3; k++) {
    bbMin[k] = Math.min(bbMin[k], m.pos[i + k]); bbMax[k] = Math.max(bbMax[k], m.pos[i + k]);
  }
});
sources.forEach(function (s) { for (var k = 0; k < 3; k++) { bbMin[k] = Math.min(bbMin[k], s.pos[k]); bbMax[k] = Math.max(bbMax[k], s.pos[k]); } });
var center = [0,1,2].map(function (k) { return 0.5 * (bbMin[k] + bbMax[k]); });
var radius = 0.5 * Math.hypot(bbMax[0]-bbMin[0], bbMax[1]-bbMin[1], bbMax[2]-bbMin[2]) || 100;
var FOV = 30 * Math.PI / 180;
var cam = { yaw: D.view[0] * Math.PI / 180, pitch: D.view[1] * Math.PI / 180, dist: 1.0, target: center.slice() };
var VIEWS = { Left: [180, 0], Right: [0, 0], Front: [90, 0], Back: [-90, 0], Top: [-90, 89] };
function eyeDir() { var cp = Math.cos(cam.pitch); return [cp * Math.cos(cam.yaw), cp * Math.sin(cam.yaw), Math.sin(cam.pitch)]; }
function matrices(w, h) {
  var d = radius / Math.sin(FOV / 2) * 0.72 * cam.dist * Math.max(1, h / w * 1.3);
  var e = eyeDir(), eye = [cam.target[0] + d * e[0], cam.target[1] + d * e[1], cam.target[2] + d * e[2]];
  var view = lookAt(eye, cam.target, [0, 0, 1]);
  var proj = perspective(FOV, w / h, Math.max(d - 3 * radius, 1), d + 3 * radius);
  return { view: view, proj: proj, mvp: mul(proj, view), eye: eye, d: d };
}

// ------------------------------------------------------------------ WebGL
var canvas = document.getElementById('gl');
var gl = null;
try { gl = canvas.getContext('webgl', { antialias: true, preserveDrawingBuffer: true, premultipliedAlpha: false }) ||
           canvas.getContext('experimental-webgl', { preserveDrawingBuffer: true }); } catch (e) { gl = null; }
var VS = 'attribute vec3 aPos; attribute vec3 aNrm; attribute vec3 aCol;' +
  'uniform mat4 uMVP; uniform mat4 uView; uniform vec4 uSphere; uniform float uIsSphere;' +
  'varying vec3 vN; varying vec3 vC; varying vec3 vV;' +
  'void main(){ vec3 p = uIsSphere > 0.5 ? uSphere.xyz + uSphere.w * aPos : aPos;' +
  ' vN = (uView * vec4(aNrm, 0.0)).xyz; vC = aCol; vV = -(uView * vec4(p, 1.0)).xyz; gl_Position = uMVP * vec4(p, 1.0); }';
var FS = 'precision mediump float; varying vec3 vN; varying vec3 vC; varying vec3 vV;' +
  'uniform vec3 uColor; uniform float uUseColor; uniform float uAlpha; uniform float uSpec;' +
  'void main(){ vec3 n = normalize(vN); vec3 v = normalize(vV); if (dot(n, v) < 0.0) n = -n;' +
  ' vec3 L1 = normalize(vec3(0.3, 0.5, 1.0)); vec3 L2 = normalize(vec3(-0.6, -0.2, 0.5));' +
  ' float dif = 0.65 * max(dot(n, L1), 0.0) + 0.25 * max(dot(n, L2), 0.0);' +
  ' float spec = uSpec * pow(max(dot(n, normalize(L1 + v)), 0.0), 30.0);' +
  ' vec3 base = uUseColor > 0.5 ? uColor : vC;' +
  ' gl_FragColor = vec4(base * (0.28 + dif) + vec3(spec), uAlpha); }';
var prog, loc = {}, sphereGeo = null;
function compile(type, src) {
  var s = gl.createShader(type); gl.shaderSource(s, src); gl.compileShader(s);
  if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error('shader: ' + gl.getShaderInfoLog(s));
  return s;
}
function buffer(data, target) {
  var b = gl.createBuffer(); gl.bindBuffer(target || gl.ARRAY_BUFFER, b);
  gl.bufferData(target || gl.ARRAY_BUFFER, data, gl.STATIC_DRAW); return b;
}
function vertexNormals(pos, idx) {
  var n = new Float32Array(pos.length);
  for (var t = 0; t < idx.length; t += 3) {
    var a = idx[t] * 3, b = idx[t + 1] * 3, c = idx[t + 2] * 3;
    var u = [pos[b]-pos[a], pos[b+1]-pos[a+1], pos[b+2]-pos[a+2]], v = [pos[c]-pos[a], pos[c+1]-pos[a+1], pos[c+2]-pos[a+2]];
    var f = cross(u, v);
    for (var k = 0; k < 3; k++) { n[a+k] += f[k]; n[b+k] += f[k]; n[c+k] += f[k]; }
  }
  for (var i = 0; i < n.length; i += 3) { var l = Math.hypot(n[i], n[i+1], n[i+2]) || 1; n[i] /= l; n[i+1] /= l; n[i+2] /= l; }
  return n;
}
function unitSphere(nLat, nLon) {
  var p = [], ix = [];
  for (var i = 0; i <= nLat; i++) { var th = Math.PI * i / nLat;
    for (var j = 0; j <= nLon; j++) { var ph = 2 * Math.PI * j / nLon;
      p.push(Math.sin(th) * Math.cos(ph), Math.sin(th) * Math.sin(ph), Math.cos(th)); } }
  for (i = 0; i < nLat; i++) for (j = 0; j < nLon; j++) {
    var a = i * (nLon + 1) + j, b = a + nLon + 1; ix.push(a, b, a + 1, b, b + 1, a + 1); }
  return { pos: new Float32Array(p), idx: new Uint16Array(ix) };
}
function initGL() {
  prog = gl.createProgram();
  gl.attachShader(prog, compile(gl.VERTEX_SHADER, VS)); gl.attachShader(prog, compile(gl.FRAGMENT_SHADER, FS));
  gl.linkProgram(prog);
  if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error('link: ' + gl.getProgramInfoLog(prog));
  gl.useProgram(prog);
  ['aPos','aNrm','aCol'].forEach(function (a) { loc[a] = gl.getAttribLocation(prog, a); });
  ['uMVP','uView','uSphere','uIsSphere','uColor','uUseColor','uAlpha','uSpec'].forEach(function (u) { loc[u] = gl.getUniformLocation(prog, u); });
  var uint = gl.getExtension('OES_element_index_uint');
  meshes.forEach(function (m) {
    var col = new Float32Array(m.pos.length);
    for (var i = 0; i < m.grey.length; i++) { var g = m.grey[i] / 255; col[3*i] = g; col[3*i+1] = g; col[3*i+2] = g * 0.985; }
    m.bPos = buffer(m.pos); m.bNrm = buffer(vertexNormals(m.pos, m.idx)); m.bCol = buffer(col);
    var idx = m.idx;
    if (!uint) { // split-free fallback: drop to 16-bit only when it fits
      if (m.pos.length / 3 > 65535) throw new Error('mesh too large without OES_element_index_uint');
      idx = new Uint16Array(m.idx); m.idxType = gl.UNSIGNED_SHORT;
    } else { m.idxType = gl.UNSIGNED_INT; }
    m.bIdx = buffer(idx, gl.ELEMENT_ARRAY_BUFFER); m.n = idx.length;
  });
  var s = unitSphere(16, 24);
  sphereGeo = { bPos: buffer(s.pos), bNrm: buffer(s.pos), bIdx: buffer(s.idx, gl.ELEMENT_ARRAY_BUFFER), n: s.idx.length };
  gl.enable(gl.DEPTH_TEST);
}
function bindAttr(name, buf) { gl.bindBuffer(gl.ARRAY_BUFFER, buf); gl.enableVertexAttribArray(loc[name]); gl.vertexAttribPointer(loc[name], 3, gl.FLOAT, false, 0, 0); }

function sourceLook(s) {
  var a = Math.abs(s.amp[tIdx]) / vmax, live = a > 0.02;
  var r = live ? D.rmin + (D.rmax - D.rmin) * Math.sqrt(Math.min(a, 1)) : D.rmin * 0.6;
  var col = live ? cmap(a) : [0.25, 0.25, 0.25];
  // Low-confidence sources are washed out towards light grey, as in the static maps.
  if (s.faded) col = col.map(function (v) { return 0.35 * v + 0.65 * 0.85; });
  return { r: r, col: col, live: live };
}
var lastM = null;
function resize() {
  var dpr = window.devicePixelRatio || 1, w = Math.max(1, Math.round(canvas.clientWidth * dpr)), h = Math.max(1, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
}
function draw() {
  if (!gl) return;
  resize();
  var M = matrices(canvas.width, canvas.height); lastM = M;
  gl.viewport(0, 0, canvas.width, canvas.height);
  gl.clearColor(1, 1, 1, 1); gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
  gl.useProgram(prog);
  gl.uniformMatrix4fv(loc.uMVP, false, new Float32Array(M.mvp));
  gl.uniformMatrix4fv(loc.uView, false, new Float32Array(M.view));
  // spheres (opaque) first
  gl.disable(gl.BLEND); gl.depthMask(true);
  gl.uniform1f(loc.uIsSphere, 1); gl.uniform1f(loc.uUseColor, 1); gl.uniform1f(loc.uAlpha, 1); gl.uniform1f(loc.uSpec, 0.35);
  bindAttr('aPos', sphereGeo.bPos); bindAttr('aNrm', sphereGeo.bNrm);
  gl.disableVertexAttribArray(loc.aCol); gl.vertexAttrib3f(loc.aCol, 1, 1, 1);
  gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, sphereGeo.bIdx);
  sources.forEach(function (s, i) {
    if (!meshVisible(s.mesh)) return;
    var L = sourceLook(s);
    if (i === selected) { // halo: a slightly larger cyan shell drawn first
      gl.uniform4f(loc.uSphere, s.pos[0], s.pos[1], s.pos[2], L.r * 1.45 + 0.8);
      gl.uniform3f(loc.uColor, 0.05, 0.75, 0.95); gl.uniform1f(loc.uAlpha, 1);
      gl.cullFace(gl.FRONT); gl.enable(gl.CULL_FACE);
      gl.drawElements(gl.TRIANGLES, sphereGeo.n, gl.UNSIGNED_SHORT, 0);
      gl.disable(gl.CULL_FACE);
    }
    gl.uniform4f(loc.uSphere, s.pos[0], s.pos[1], s.pos[2], L.r);
    gl.uniform3f(loc.uColor, L.col[0], L.col[1], L.col[2]);
    gl.drawElements(gl.TRIANGLES, sphereGeo.n, gl.UNSIGNED_SHORT, 0);
  });
  // brain meshes
  gl.uniform1f(loc.uIsSphere, 0); gl.uniform1f(loc.uUseColor, 0); gl.uniform1f(loc.uSpec, 0.06);
  gl.uniform1f(loc.uAlpha, opacity);
  if (opacity < 0.999) { gl.enable(gl.BLEND); gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA); gl.depthMask(false); }
  meshes.forEach(function (m) {
    if (!m.visible) return;
    bindAttr('aPos', m.bPos); bindAttr('aNrm', m.bNrm); bindAttr('aCol', m.bCol);
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, m.bIdx);
    gl.drawElements(gl.TRIANGLES, m.n, m.idxType, 0);
  });
  gl.depthMask(true); gl.disable(gl.BLEND);
}
function meshVisible(name) { for (var i = 0; i < meshes.length; i++) if (meshes[i].name === name) return meshes[i].visible; return true; }
var pending = false;
function requestDraw() { if (pending) return; pending = true; requestAnimationFrame(function () { pending = false; draw(); }); }

// ------------------------------------------------------------------ picking
function screenOf(p) {
  var M = lastM || matrices(canvas.width, canvas.height), c = xform(M.mvp, p);
  var rect = canvas.getBoundingClientRect();
  return { x: rect.left + (c[0] / c[3] + 1) / 2 * rect.width, y: rect.top + (1 - c[1] / c[3]) / 2 * rect.height, depth: c[3] };
}
function occluded(i) {
  // Is an opaque brain mesh between the camera and source i? (Moller-Trumbore ray casts.)
  if (opacity < 0.999) return false;
  var M = lastM || matrices(canvas.width, canvas.height), s = sources[i], o = M.eye;
  var dir = sub(s.pos, o), len = Math.hypot(dir[0], dir[1], dir[2]), tmax = len - sourceLook(s).r - 0.5;
  dir = [dir[0] / len, dir[1] / len, dir[2] / len];
  for (var m = 0; m < meshes.length; m++) {
    var me = meshes[m]; if (!me.visible) continue;
    var P = me.pos, I = me.idx;
    for (var t = 0; t < I.length; t += 3) {
      var a = 3 * I[t], b = 3 * I[t + 1], c = 3 * I[t + 2];
      var e1x = P[b] - P[a], e1y = P[b+1] - P[a+1], e1z = P[b+2] - P[a+2];
      var e2x = P[c] - P[a], e2y = P[c+1] - P[a+1], e2z = P[c+2] - P[a+2];
      var px = dir[1] * e2z - dir[2] * e2y, py = dir[2] * e2x - dir[0] * e2z, pz = dir[0] * e2y - dir[1] * e2x;
      var det = e1x * px + e1y * py + e1z * pz; if (Math.abs(det) < 1e-12) continue;
      var inv = 1 / det, tx = o[0] - P[a], ty = o[1] - P[a+1], tz = o[2] - P[a+2];
      var u = (tx * px + ty * py + tz * pz) * inv; if (u < 0 || u > 1) continue;
      var qx = ty * e1z - tz * e1y, qy = tz * e1x - tx * e1z, qz = tx * e1y - ty * e1x;
      var v = (dir[0] * qx + dir[1] * qy + dir[2] * qz) * inv; if (v < 0 || u + v > 1) continue;
      var tt = (e2x * qx + e2y * qy + e2z * qz) * inv;
      if (tt > 0 && tt < tmax) return true;
    }
  }
  return false;
}
function pick(clientX, clientY) {
  var rect = canvas.getBoundingClientRect();
  var focal = rect.height / 2 / Math.tan(FOV / 2), hits = [];
  sources.forEach(function (s, i) {
    if (!meshVisible(s.mesh)) return;
    var q = screenOf(s.pos), rpx = sourceLook(s).r * focal / q.depth;
    var d = Math.hypot(q.x - clientX, q.y - clientY);
    // on the sphere's disc first (front-most first), then within a 6-px slop
    if (d <= rpx + 6) hits.push([d <= rpx ? 0 : 1, q.depth, i]);
  });
  hits.sort(function (x, y) { return x[0] - y[0] || x[1] - y[1]; });
  for (var k = 0; k < hits.length; k++) if (!occluded(hits[k][2])) return hits[k][2];
  return -1;
}
function select(i) {
  selected = i;
  var rows = document.querySelectorAll('#srclist tr');
  for (var k = 0; k < rows.length; k++) rows[k].className = (+rows[k].dataset.i === i) ? 'sel' : '';
  drawTC(); requestDraw();
}
var down = null;
canvas.addEventListener('pointerdown', function (e) {
  down = { x: e.clientX, y: e.clientY, yaw: cam.yaw, pitch: cam.pitch, t: cam.target.slice(), pan: e.shiftKey || e.button === 2, moved: false };
  try { canvas.setPointerCapture(e.pointerId); } catch (err) { /* synthetic events */ }
  canvas.classList.add('dragging');
});
canvas.addEventListener('pointermove', function (e) {
  if (!down) return;
  var dx = e.clientX - down.x, dy = e.clientY - down.y;
  if (Math.hypot(dx, dy) > 3) down.moved = true;
  if (!down.moved) return;
  if (down.pan) {
    var M = lastM, sc = M.d * Math.tan(FOV / 2) * 2 / canvas.clientHeight;
    var right = [M.view[0], M.view[4], M.view[8]], up = [M.view[1], M.view[5], M.view[9]];
    for (var k = 0; k < 3; k++) cam.target[k] = down.t[k] - sc * (dx * right[k] - dy * up[k]);
  } else {
    cam.yaw = down.yaw - dx * 0.008;
    cam.pitch = Math.max(-1.55, Math.min(1.55, down.pitch + dy * 0.008));
    showView('rotated');
  }
  requestDraw();
});
canvas.addEventListener('pointerup', function (e) {
  canvas.classList.remove('dragging');
  if (down && !down.moved) { var i = pick(e.clientX, e.clientY); if (i >= 0) select(i); }
  down = null;
});
canvas.addEventListener('contextmenu', function (e) { e.preventDefault(); });
canvas.addEventListener('wheel', function (e) {
  e.preventDefault(); cam.dist = Math.max(0.15, Math.min(5, cam.dist * Math.exp(e.deltaY * 0.001))); requestDraw();
}, { passive: false });
window.addEventListener('resize', function () { requestDraw(); drawTC(); });

// ------------------------------------------------------------------ time-course panel
var tcc = document.getElementById('tc');
function drawTC() {
  var dpr = window.devicePixelRatio || 1, W = tcc.clientWidth, H = tcc.clientHeight;
  tcc.width = Math.max(1, Math.round(W * dpr)); tcc.height = Math.max(1, Math.round(H * dpr));
  var c = tcc.getContext('2d'); c.setTransform(dpr, 0, 0, dpr, 0, 0); c.clearRect(0, 0, W, H);
  var L = 64, R = 16, T = 28, B = 34, pw = W - L - R, ph = H - T - B;
  var t0 = times[0], t1 = times[nT - 1] === t0 ? t0 + 1 : times[nT - 1];
  var lo = 0, hi = 0;
  sources.forEach(function (s) { s.tc.forEach(function (v) { lo = Math.min(lo, v); hi = Math.max(hi, v); }); });
  if (hi - lo <= 0) hi = lo + 1; var pad = 0.08 * (hi - lo); lo -= pad; hi += pad;
  function X(t) { return L + (t - t0) / (t1 - t0) * pw; }
  function Y(v) { return T + (hi - v) / (hi - lo) * ph; }
  c.strokeStyle = '#bbb'; c.lineWidth = 1; c.strokeRect(L, T, pw, ph);
  c.fillStyle = '#333'; c.font = '11px DejaVu Sans, sans-serif'; c.textAlign = 'center';
  var step = niceStep((t1 - t0) / 8);
  for (var t = Math.ceil(t0 / step) * step; t <= t1 + 1e-9; t += step) { c.fillText(fmt(t), X(t), T + ph + 14); c.beginPath(); c.moveTo(X(t), T + ph); c.lineTo(X(t), T + ph + 4); c.stroke(); }
  c.fillText('time (ms)', L + pw / 2, H - 4);
  c.textAlign = 'right'; var vs = niceStep((hi - lo) / 5);
  for (var v = Math.ceil(lo / vs) * vs; v <= hi; v += vs) { c.fillText(fmt(v), L - 6, Y(v) + 4); }
  c.save(); c.translate(14, T + ph / 2); c.rotate(-Math.PI / 2); c.textAlign = 'center'; c.fillText(D.ylabel, 0, 0); c.restore();
  if (lo < 0 && hi > 0) { c.strokeStyle = '#ccc'; c.beginPath(); c.moveTo(L, Y(0)); c.lineTo(L + pw, Y(0)); c.stroke(); }
  sources.forEach(function (s, i) { if (i !== selected) line(s.tc, 'rgba(120,120,120,0.35)', 1); });
  var lab = document.getElementById('tclabel');
  if (selected >= 0) {
    var s = sources[selected]; line(s.tc, '#0f6cbd', 2.2);
    var p = 0; for (var k = 1; k < nT; k++) if (Math.abs(s.tc[k]) > Math.abs(s.tc[p])) p = k;
    c.fillStyle = '#c8102e'; c.beginPath(); c.arc(X(times[p]), Y(s.tc[p]), 5, 0, 2 * Math.PI); c.fill();
    lab.textContent = s.label + ' \u2014 peak ' + fmt(Math.abs(s.tc[p])) + ' ' + D.units + ' at ' + fmt(times[p]) + ' ms';
    lab.dataset.selected = s.label;
  } else { lab.textContent = sources.length ? 'click a source (sphere or list) to show its time course' : 'no active source'; lab.dataset.selected = ''; }
  c.strokeStyle = 'rgba(0,0,0,0.6)'; c.setLineDash([4, 3]); c.beginPath(); c.moveTo(X(times[tIdx]), T); c.lineTo(X(times[tIdx]), T + ph); c.stroke(); c.setLineDash([]);
  tcc.dataset.drawn = selected >= 0 ? sources[selected].label : '';
  function line(y, col, w) { c.strokeStyle = col; c.lineWidth = w; c.beginPath(); for (var k = 0; k < nT; k++) { if (k) c.lineTo(X(times[k]), Y(y[k])); else c.moveTo(X(times[k]), Y(y[k])); } c.stroke(); }
}
function niceStep(x) { var p = Math.pow(10, Math.floor(Math.log10(x || 1))), m = x / p; return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p; }
function fmt(v) { return Math.abs(v) >= 100 || v === Math.round(v) ? String(Math.round(v)) : v.toPrecision(3); }

// ------------------------------------------------------------------ controls
var slider = document.getElementById('time');
slider.max = nT - 1; slider.value = tIdx;
function setTime(i) {
  tIdx = Math.max(0, Math.min(nT - 1, i)); slider.value = tIdx;
  var txt = 't = ' + times[tIdx].toFixed(1) + ' ms';
  document.getElementById('tval').textContent = times[tIdx].toFixed(1) + ' ms';
  document.getElementById('timebig').textContent = txt;
  updateList(); drawTC(); requestDraw();
}
slider.addEventListener('input', function () { setTime(+slider.value); });
document.getElementById('play').addEventListener('click', function () {
  playing = !playing; this.innerHTML = playing ? '&#10074;&#10074;' : '&#9654;';
  var last = 0;
  function step(ts) { if (!playing) return; if (ts - last > 60) { last = ts; setTime((tIdx + 1) % nT); } requestAnimationFrame(step); }
  if (playing) requestAnimationFrame(step);
});
var vb = document.getElementById('viewbtns');
// The name of the view shown, so a start view chosen automatically (e.g. Front) is labelled.
var viewName = document.createElement('span'); viewName.id = 'viewname'; viewName.style.color = 'var(--muted)';
function showView(name) {
  viewName.textContent = 'view: ' + name;
  var bs = vb.querySelectorAll('button');
  for (var k = 0; k < bs.length; k++) bs[k].style.borderColor = bs[k].textContent === name ? 'var(--accent)' : '';
}
function viewOf(yaw, pitch) {
  var names = Object.keys(VIEWS);
  for (var k = 0; k < names.length; k++) {
    var v = VIEWS[names[k]];
    // the data's default views look from 10 degrees above: still that named view
    if (Math.abs(v[0] * Math.PI / 180 - yaw) < 1e-6 && Math.abs(v[1] * Math.PI / 180 - pitch) < 0.2) return names[k];
  }
  return 'rotated';
}
Object.keys(VIEWS).forEach(function (k) {
  var b = document.createElement('button'); b.textContent = k;
  b.addEventListener('click', function () { cam.yaw = VIEWS[k][0] * Math.PI / 180; cam.pitch = VIEWS[k][1] * Math.PI / 180; cam.target = center.slice(); cam.dist = 1; showView(k); requestDraw(); });
  vb.appendChild(b);
});
vb.appendChild(viewName);
showView(viewOf(cam.yaw, cam.pitch));
var mt = document.getElementById('meshtoggles');
meshes.forEach(function (m) {
  var l = document.createElement('label'), cb = document.createElement('input'); cb.type = 'checkbox'; cb.checked = true;
  cb.addEventListener('change', function () { m.visible = cb.checked; requestDraw(); });
  l.appendChild(cb); l.appendChild(document.createTextNode(' ' + m.label + ' ')); mt.appendChild(l);
});
var op = document.getElementById('opacity'); op.value = opacity;
op.addEventListener('input', function () { opacity = +op.value; requestDraw(); });
var grad = []; for (var g = 0; g <= 10; g++) grad.push(css(cmap(g / 10)));
document.getElementById('cbar').style.background = 'linear-gradient(to right,' + grad.join(',') + ')';
document.getElementById('cbmid').textContent = fmt(vmax / 2);
document.getElementById('cbmax').textContent = fmt(vmax) + ' ' + D.units;
document.getElementById('ttl').textContent = D.title;
document.getElementById('subttl').textContent = D.subtitle;
document.getElementById('srchead').textContent = 'Sources (' + sources.length + (D.n_hidden ? ' shown, ' + D.n_hidden + ' weaker hidden' : '') + ')';
var table = document.getElementById('srclist');
sources.forEach(function (s, i) {
  var tr = document.createElement('tr'); tr.dataset.i = i;
  tr.innerHTML = '<td><span class="sw"></span></td><td>' + s.label + '</td><td class="amp" style="text-align:right"></td>';
  tr.addEventListener('click', function () { select(i); });
  table.appendChild(tr);
});
function updateList() {
  var rows = table.querySelectorAll('tr');
  for (var k = 0; k < rows.length; k++) {
    var s = sources[+rows[k].dataset.i], L = sourceLook(s);
    rows[k].querySelector('.sw').style.background = css(L.col);
    rows[k].querySelector('.amp').textContent = fmt(Math.abs(s.amp[tIdx])) + ' ' + D.units;
  }
}

// ------------------------------------------------------------------ start
if (gl) {
  try { initGL(); } catch (e) { console.error(String(e)); gl = null; }
}
if (!gl) { document.getElementById('nogl').style.display = 'flex'; canvas.style.display = 'none'; }
else { chooseView(); }
function chooseView() {
  // Start from the standard view that shows the most source amplitude unhidden by the brain
  // (the strongest 10 sources at the start time), preferring the data's default view on ties.
  if (!sources.length || opacity < 0.999) return;
  var top = sources.slice(0, 10), names = ['Left', 'Right', 'Top', 'Back', 'Front'];
  var best = null, bestScore = -1, start = [cam.yaw, cam.pitch];
  var cand = [start].concat(names.map(function (k) { return [VIEWS[k][0] * Math.PI / 180, VIEWS[k][1] * Math.PI / 180]; }));
  resize(); lastM = null;
  cand.forEach(function (v, ci) {
    cam.yaw = v[0]; cam.pitch = v[1]; lastM = matrices(canvas.width, canvas.height);
    var score = 0;
    top.forEach(function (s, i) { if (!occluded(i)) score += Math.abs(s.amp[tIdx]) + 1e-6; });
    if (score > bestScore * 1.05) { bestScore = score; best = v; }
  });
  cam.yaw = best[0]; cam.pitch = best[1]; lastM = null;
  showView(viewOf(cam.yaw, cam.pitch));
}
setTime(tIdx);
draw();
if (sources.length) select(-1);

window.meegViewer = { pick: pick, select: select, setTime: setTime, screenOf: screenOf, draw: draw,
                      state: function () { return { selected: selected, tIdx: tIdx, webgl: !!gl }; } };

// ------------------------------------------------------------------ self-test hook (?autotest=1)
if (/[?&]autotest=1/.test(location.search)) {
  var res = { webgl: !!gl, nonblank: 0, n_sources: sources.length, expected: null, picked: null, drawn: null,
              start_view: viewName.textContent };
  try {
    draw();
    if (gl) {
      var w = canvas.width, h = canvas.height, px = new Uint8Array(w * h * 4), n = 0, tot = 0;
      gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, px);
      for (var q = 0; q < px.length; q += 4 * 7) { tot++; if (px[q] < 245 || px[q + 1] < 245 || px[q + 2] < 245) n++; }
      res.nonblank = n / tot; res.canvas = [w, h];
    }
    if (sources.length && gl) {
      var target = -1; // the strongest source not hidden behind the brain in this view
      var focal = canvas.getBoundingClientRect().height / 2 / Math.tan(FOV / 2);
      var covered = function (i) { // centre hidden behind another source's sphere?
        var qi = screenOf(sources[i].pos);
        return sources.some(function (s, j) {
          if (j === i || !meshVisible(s.mesh)) return false;
          var qj = screenOf(s.pos);
          return qj.depth < qi.depth && Math.hypot(qj.x - qi.x, qj.y - qi.y) <= sourceLook(s).r * focal / qj.depth + 6;
        });
      };
      for (var q2 = 0; q2 < sources.length && target < 0; q2++) if (!occluded(q2) && !covered(q2)) target = q2;
      res.occluded = sources.filter(function (s, k) { return occluded(k); }).map(function (s) { return s.label; });
      res.n_occluded = res.occluded.length;
      if (target < 0) throw new Error('every source is hidden in the default view');
      res.expected = sources[target].label;
      var sp = screenOf(sources[target].pos); res.click = [sp.x, sp.y];
      var opts = { clientX: sp.x, clientY: sp.y, bubbles: true, cancelable: true, button: 0, pointerId: 1, isPrimary: true };
      var el = document.elementFromPoint(sp.x, sp.y) || canvas;
      res.hit_element = el.id || el.tagName;
      el.dispatchEvent(new PointerEvent('pointerdown', opts));
      el.dispatchEvent(new PointerEvent('pointerup', opts));
      res.picked = selected >= 0 ? sources[selected].label : null;
      res.drawn = tcc.dataset.drawn || null;
      res.tc_label = document.getElementById('tclabel').textContent;
    }
    if (gl) {
      // The time slider changes the time shown; a drag rotates; the wheel zooms.
      // The view and time are put back afterwards (a screenshot may follow).
      var big = document.getElementById('timebig'), tb = big.textContent, ti0 = tIdx;
      slider.value = String((tIdx + Math.max(1, Math.floor(nT / 3))) % nT);
      slider.dispatchEvent(new Event('input', { bubbles: true }));
      res.time = { before: tb, after: big.textContent, moved: tIdx !== ti0 };
      var rc = canvas.getBoundingClientRect(), cx = rc.left + rc.width / 2, cy = rc.top + rc.height / 2;
      var yaw0 = cam.yaw, dist0 = cam.dist, sel0 = selected;
      var drag = function (type, x) {
        canvas.dispatchEvent(new PointerEvent(type, { clientX: x, clientY: cy, bubbles: true, cancelable: true,
                                                     button: 0, pointerId: 2, isPrimary: true }));
      };
      drag('pointerdown', cx); drag('pointermove', cx + 80); drag('pointerup', cx + 80);
      canvas.dispatchEvent(new WheelEvent('wheel', { deltaY: 300, clientX: cx, clientY: cy, bubbles: true, cancelable: true }));
      res.rotated = cam.yaw !== yaw0; res.zoomed = cam.dist > dist0; res.drag_kept_selection = selected === sel0;
      cam.yaw = yaw0; cam.dist = dist0; setTime(ti0); draw();
    }
  } catch (e) { console.error('autotest: ' + e); }
  res.errors = window.__viewerErrors.slice();
  var out = document.getElementById('autotest-result'); out.textContent = JSON.stringify(res); out.style.display = 'block';
  document.title = 'AUTOTEST DONE';
}
})();
</script>
</body>
</html>
"""

// rubric's sample viewer (src/report/viewer.rs writes the page around it). No network, no
// library: the samples are JSON blobs in <script type="application/json"> elements, one per
// run and task, parsed when the task is first shown; only one page of rows is in the DOM.
// A row: [doc_id, filter, prompt, response, filtered, target, [values by metric], extras],
// the prompt as its index in the task's prompt list (a blob of its own, shared by the runs).
(function () {
  'use strict';
  var root = document.getElementById('rv');
  if (!root) return;
  var index = JSON.parse(document.getElementById('rv-index').textContent);
  var runs = index.runs;
  var $ = function (id) { return document.getElementById(id); };
  var parsed = {};
  var st = {
    a: index.a || 0, b: index.b === undefined || index.b === null ? -1 : index.b,
    task: '', filter: '', metric: '', value: '', flip: '', q: '', page: 0, size: 25
  };
  var items = null, itemsKey = '', shown = null, hay = {};

  function esc(s) {
    return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;');
  }
  function taskOf(r, name) {
    var ts = runs[r].tasks;
    for (var i = 0; i < ts.length; i++) if (ts[i].task === name) return ts[i];
    return null;
  }
  function rowsOf(r, name) {
    var t = taskOf(r, name);
    if (!t) return null;
    if (!parsed[t.blob]) parsed[t.blob] = JSON.parse($(t.blob).textContent);
    return parsed[t.blob];
  }
  function prompt(r, x) {
    var id = taskOf(r, st.task).prompts;
    if (!parsed[id]) parsed[id] = JSON.parse($(id).textContent);
    return parsed[id][x[2]];
  }
  function haystack(r, name, i) {
    var k = r + '\u0000' + name, h = hay[k];
    if (!h) h = hay[k] = [];
    if (h[i] === undefined) {
      var x = rowsOf(r, name)[i];
      h[i] = (x[0] + '\n' + prompt(r, x) + '\n' + x[3] + '\n' + x[4] + '\n' + x[5]).toLowerCase();
    }
    return h[i];
  }
  function right(v) { return v === 1 || v === true; }
  function binary(v) { return v === 0 || v === 1 || v === true || v === false; }
  function valueClass(v) { return right(v) ? 'ok' : (v === 0 || v === false) ? 'bad' : 'other'; }
  function metricIndex(r, name) {
    var t = taskOf(r, st.task);
    return t ? t.metrics.indexOf(name) : -1;
  }
  function show(v) {
    if (v === null || v === undefined) return '-';
    return typeof v === 'string' ? v : JSON.stringify(v);
  }

  // The rows of run A (and their pairs in run B by doc_id and filter), flips first.
  function build() {
    var key = st.a + '|' + st.b + '|' + st.task + '|' + st.metric;
    if (key === itemsKey) return;
    itemsKey = key;
    var A = rowsOf(st.a, st.task) || [], out = [], i;
    if (st.b < 0) {
      for (i = 0; i < A.length; i++) out.push({ a: i, b: -1, flip: '' });
      items = out;
      return;
    }
    var B = rowsOf(st.b, st.task) || [], byKey = new Map(), used = new Uint8Array(B.length);
    for (i = 0; i < B.length; i++) byKey.set(B[i][0] + '\u0000' + B[i][1], i);
    var ma = metricIndex(st.a, st.metric), mb = metricIndex(st.b, st.metric);
    var worse = [], better = [], rest = [];
    for (i = 0; i < A.length; i++) {
      var j = byKey.get(A[i][0] + '\u0000' + A[i][1]);
      if (j === undefined) j = -1; else used[j] = 1;
      var flip = '';
      if (j >= 0 && ma >= 0 && mb >= 0) {
        var va = A[i][6][ma], vb = B[j][6][mb];
        if (binary(va) && binary(vb) && right(va) !== right(vb)) flip = right(va) ? 'worse' : 'better';
      }
      (flip === 'worse' ? worse : flip === 'better' ? better : rest).push({ a: i, b: j, flip: flip });
    }
    for (i = 0; i < B.length; i++) if (!used[i]) rest.push({ a: -1, b: i, flip: '' });
    items = worse.concat(better, rest);
  }

  function filterItems() {
    build();
    var q = st.q.toLowerCase(), A = rowsOf(st.a, st.task) || [], B = st.b >= 0 ? (rowsOf(st.b, st.task) || []) : [];
    var ma = metricIndex(st.a, st.metric), out = [];
    for (var n = 0; n < items.length; n++) {
      var it = items[n], x = it.a >= 0 ? A[it.a] : B[it.b];
      if (st.filter && x[1] !== st.filter) continue;
      if (st.flip === 'any' && !it.flip) continue;
      if ((st.flip === 'worse' || st.flip === 'better') && it.flip !== st.flip) continue;
      if (st.value) {
        if (it.a < 0 || ma < 0) continue;
        var c = valueClass(A[it.a][6][ma]);
        if (c !== st.value) continue;
      }
      if (q && !((it.a >= 0 && haystack(st.a, st.task, it.a).indexOf(q) >= 0) ||
                 (it.b >= 0 && haystack(st.b, st.task, it.b).indexOf(q) >= 0))) continue;
      out.push(it);
    }
    shown = out;
  }

  // A word diff (longest common subsequence of words and spaces); very long texts are marked
  // as changed as a whole.
  function diff(x, y) {
    if (x === y) return [esc(x), esc(y)];
    var s = x.split(/(\s+)/).filter(Boolean), t = y.split(/(\s+)/).filter(Boolean);
    var n = s.length, m = t.length;
    if (n * m > 4000000) return ['<del>' + esc(x) + '</del>', '<ins>' + esc(y) + '</ins>'];
    var w = m + 1, L = new Uint32Array((n + 1) * w), i, j;
    for (i = n - 1; i >= 0; i--)
      for (j = m - 1; j >= 0; j--)
        L[i * w + j] = s[i] === t[j] ? L[(i + 1) * w + j + 1] + 1 : Math.max(L[(i + 1) * w + j], L[i * w + j + 1]);
    var a = '', b = '';
    i = 0; j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && s[i] === t[j]) { a += esc(s[i]); b += esc(t[j]); i++; j++; }
      else if (j >= m || (i < n && L[(i + 1) * w + j] >= L[i * w + j + 1])) { a += '<del>' + esc(s[i]) + '</del>'; i++; }
      else { b += '<ins>' + esc(t[j]) + '</ins>'; j++; }
    }
    return [a, b];
  }

  function metricsHtml(r, x) {
    var t = taskOf(r, st.task), out = '';
    for (var k = 0; k < t.metrics.length; k++) {
      var v = x[6][k];
      out += '<span class="rv-m rv-' + valueClass(v) + '">' + esc(t.metrics[k]) + ' ' + esc(show(v)) + '</span> ';
    }
    return out;
  }
  function field(name, html, cls) {
    return '<div class="rv-f"><div class="rv-l">' + name + '</div><pre class="' + (cls || '') + '">' + html + '</pre></div>';
  }
  function extras(x) {
    return x[7] ? '<details><summary>more keys</summary><pre>' + esc(JSON.stringify(x[7], null, 1)) + '</pre></details>' : '';
  }
  function side(r, x, resp) {
    return '<div class="rv-side"><div class="rv-run">' + esc(runs[r].label + (runs[r].model ? ' (' + runs[r].model + ')' : '')) + '</div>' + metricsHtml(r, x) +
      field('response', resp, 'rv-resp') + field('filtered answer', esc(x[4])) + extras(x) + '</div>';
  }

  function itemHtml(it) {
    var A = rowsOf(st.a, st.task), x = it.a >= 0 ? A[it.a] : null;
    var y = it.b >= 0 ? rowsOf(st.b, st.task)[it.b] : null, any = x || y;
    var flip = it.flip === 'worse' ? '<span class="rv-flip rv-bad">right \u2192 wrong</span>' :
      it.flip === 'better' ? '<span class="rv-flip rv-ok">wrong \u2192 right</span>' : '';
    var h = '<article class="rv-item" data-doc="' + esc(any[0]) + '" data-filter="' + esc(any[1]) +
      '" data-flip="' + it.flip + '"><header>doc <b>' + esc(any[0]) + '</b> \u00b7 ' + esc(any[1]) + ' ' + flip;
    if (st.b < 0) {
      h += ' ' + metricsHtml(st.a, x) + '</header>' + field('prompt', esc(prompt(st.a, x)), 'rv-prompt') +
        field('response', esc(x[3]), 'rv-resp') + '<div class="rv-two">' + field('filtered answer', esc(x[4])) +
        field('target', esc(x[5])) + '</div>' + extras(x);
      return h + '</article>';
    }
    h += '</header>' + field('prompt', esc(prompt(x ? st.a : st.b, any)), 'rv-prompt');
    if (x && y && x[2] !== y[2]) h += field('prompt of ' + esc(runs[st.b].label) + ' (differs)', esc(prompt(st.b, y)), 'rv-prompt');
    var d = x && y ? diff(x[3], y[3]) : [x ? esc(x[3]) : '', y ? esc(y[3]) : ''];
    h += '<div class="rv-two">' + (x ? side(st.a, x, d[0]) : '<div class="rv-side">not in ' + esc(runs[st.a].label) + '</div>') +
      (y ? side(st.b, y, d[1]) : '<div class="rv-side">not in ' + esc(runs[st.b].label) + '</div>') + '</div>' +
      field('target', esc(any[5]));
    return h + '</article>';
  }

  function render() {
    var total = shown.length, pages = Math.max(1, Math.ceil(total / st.size));
    if (st.page >= pages) st.page = pages - 1;
    var from = st.page * st.size, to = Math.min(total, from + st.size), html = '';
    for (var n = from; n < to; n++) html += itemHtml(shown[n]);
    $('rv-rows').innerHTML = html || '<p class="note">No sample matches.</p>';
    var c = $('rv-count');
    c.textContent = total ? (from + 1) + '\u2013' + to + ' of ' + total + ' samples (page ' + (st.page + 1) + ' of ' + pages + ')' : '0 samples';
    c.setAttribute('data-total', total);
    c.setAttribute('data-page', st.page + 1);
    c.setAttribute('data-pages', pages);
    $('rv-prev').disabled = st.page === 0;
    $('rv-next').disabled = st.page + 1 >= pages;
  }

  function options(sel, list, value) {
    sel.innerHTML = list.map(function (o) {
      return '<option value="' + esc(o[0]) + '"' + (String(o[0]) === String(value) ? ' selected' : '') + '>' + esc(o[1]) + '</option>';
    }).join('');
  }
  // The task, filter and metric lists of the runs chosen.
  function controls() {
    var names = [];
    runs[st.a].tasks.forEach(function (t) { names.push(t.task); });
    if (st.b >= 0) runs[st.b].tasks.forEach(function (t) { if (names.indexOf(t.task) < 0) names.push(t.task); });
    if (names.indexOf(st.task) < 0) st.task = names[0] || '';
    options($('rv-task'), names.map(function (n) { return [n, n]; }), st.task);
    var t = taskOf(st.a, st.task) || (st.b >= 0 ? taskOf(st.b, st.task) : null);
    var filters = t ? t.filters : [], metrics = t ? t.metrics : [];
    if (filters.indexOf(st.filter) < 0) st.filter = '';
    if (metrics.indexOf(st.metric) < 0) st.metric = metrics[0] || '';
    options($('rv-filter'), [['', 'all filters']].concat(filters.map(function (f) { return [f, f]; })), st.filter);
    options($('rv-metric'), metrics.map(function (m) { return [m, m]; }), st.metric);
    var pair = st.b >= 0;
    $('rv-flip').disabled = !pair;
    if (!pair) { st.flip = ''; $('rv-flip').value = ''; }
    var miss = runs[st.a].missing.concat(pair ? runs[st.b].missing : []);
    $('rv-missing').textContent = miss.length ? 'Without samples: ' + miss.join('; ') : '';
  }

  function update(reset) {
    if (reset) st.page = 0;
    filterItems();
    render();
  }
  function bind(id, ev, f) { $(id).addEventListener(ev, f); }
  function init() {
    var list = runs.map(function (r, i) { return [i, r.label + (r.model ? ' (' + r.model + ')' : '')]; });
    options($('rv-a'), list, st.a);
    options($('rv-b'), [[-1, 'none']].concat(list), st.b);
    controls();
    bind('rv-a', 'change', function (e) { st.a = +e.target.value; controls(); update(true); });
    bind('rv-b', 'change', function (e) { st.b = +e.target.value; controls(); update(true); });
    bind('rv-task', 'change', function (e) { st.task = e.target.value; controls(); update(true); });
    bind('rv-filter', 'change', function (e) { st.filter = e.target.value; update(true); });
    bind('rv-metric', 'change', function (e) { st.metric = e.target.value; update(true); });
    bind('rv-value', 'change', function (e) { st.value = e.target.value; update(true); });
    bind('rv-flip', 'change', function (e) { st.flip = e.target.value; update(true); });
    bind('rv-search', 'input', function (e) { st.q = e.target.value; update(true); });
    bind('rv-size', 'change', function (e) { st.size = +e.target.value; update(true); });
    bind('rv-prev', 'click', function () { st.page--; update(false); });
    bind('rv-next', 'click', function () { st.page++; update(false); });
    update(true);
    document.documentElement.setAttribute('data-rv-first-page-ms', performance.now().toFixed(1));
  }
  init();
})();

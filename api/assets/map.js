// omniroute's offline map: leaflet for panning and zooming, one canvas for every layer.
// Data: the JSON in #omniroute-data (omniroute map --html) or from OMNIROUTE_DATA_URL (GET /map).
// When the first drawing is done, window.omnirouteMap.ready is true and #status holds what each
// layer drew (the browser test reads it).
(function () {
  'use strict';
  const t0 = performance.now();

  // Arrays arrive gzipped and base64-encoded; inflate them all before anything is drawn.
  function raw(s) {
    const bin = atob(s);
    const u8 = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
    return u8;
  }
  const inflated = new Map();
  async function inflate(s) {
    const stream = new Blob([raw(s)]).stream().pipeThrough(new DecompressionStream('gzip'));
    inflated.set(s, new Uint8Array(await new Response(stream).arrayBuffer()));
  }
  function packedStrings(d) {
    const out = [d.stores.lonlat, d.stores.city, d.stores.ids, d.land.points, d.land.starts];
    for (const v of d.views) {
      out.push(v.stores.open, v.stores.capacity, v.stores.orders, v.stores.stockouts,
        v.flows.from, v.flows.to, v.flows.orders, v.flows.km);
    }
    return out;
  }
  const bytes = (s) => inflated.get(s);
  const typed = (s, T) => { const b = bytes(s); return new T(b.buffer, b.byteOffset, b.byteLength / T.BYTES_PER_ELEMENT); };

  // Web Mercator, normalised to [0, 1] on both axes.
  const mx = (lon) => (lon + 180) / 360;
  const my = (lat) => {
    const s = Math.sin(Math.max(-85, Math.min(85, lat)) * Math.PI / 180);
    return 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI);
  };

  function prepare(d) {
    const st = d.stores;
    const ll = typed(st.lonlat, Float32Array);
    const n = st.n;
    const sx = new Float64Array(n), sy = new Float64Array(n);
    for (let i = 0; i < n; i++) { sx[i] = mx(ll[2 * i]); sy[i] = my(ll[2 * i + 1]); }
    const lp = typed(d.land.points, Float32Array);
    const land = { x: new Float64Array(lp.length / 2), y: new Float64Array(lp.length / 2), starts: typed(d.land.starts, Uint32Array) };
    for (let i = 0; i < land.x.length; i++) { land.x[i] = mx(lp[2 * i]); land.y[i] = my(lp[2 * i + 1]); }
    const views = d.views.map((v) => ({
      name: v.name,
      kpis: v.kpis,
      open: bytes(v.stores.open),
      capacity: typed(v.stores.capacity, Uint16Array),
      orders: typed(v.stores.orders, Uint32Array),
      stockouts: typed(v.stores.stockouts, Uint16Array),
      dcs: v.dcs,
      flows: {
        n: v.flows.n,
        from: typed(v.flows.from, Int32Array),
        to: typed(v.flows.to, Uint16Array),
        orders: typed(v.flows.orders, Uint32Array),
        km: typed(v.flows.km, Float32Array),
      },
      unfilled: v.unfilled,
    }));
    return {
      d, n, sx, sy, land, views,
      ids: new TextDecoder().decode(bytes(st.ids)).split('\n'), storeCity: typed(st.city, Uint16Array), cityNames: st.cities,
      dx: d.dcs.map((x) => mx(x.lon)), dy: d.dcs.map((x) => my(x.lat)),
      cx: d.cities.map((c) => mx(c.lon)), cy: d.cities.map((c) => my(c.lat)),
    };
  }

  const UTIL = [
    ['unused', '#9aa3ab', (u) => u === 0],
    ['under 50% of capacity', '#2a9d5c', (u) => u < 50],
    ['50 to 90%', '#e9c46a', (u) => u < 90],
    ['90 to 100%', '#f4a261', (u) => u < 100],
    ['at capacity', '#d62828', () => true],
  ];
  const STOCK = [
    ['no stock-outs', '#2a9d5c', (s) => s === 0],
    ['1 or 2 SKUs out', '#e9c46a', (s) => s <= 2],
    ['3 to 9 SKUs out', '#f4a261', (s) => s < 10],
    ['10 or more SKUs out', '#d62828', () => true],
  ];

  function start(d) {
    const P = prepare(d);
    const params = new URLSearchParams(location.hash.slice(1));
    const state = {
      view: Math.min(+params.get('view') || 0, P.views.length - 1),
      compare: params.has('compare') ? +params.get('compare') : -1,
      colour: params.get('colour') || 'utilisation',
      layers: { land: true, unfilled: true, flows: true, stores: true, dcs: true, change: true },
    };
    const map = L.map('map', {
      zoomAnimation: false, fadeAnimation: false, markerZoomAnimation: false,
      attributionControl: true, zoomSnap: 0.25, worldCopyJump: false, preferCanvas: true,
    });
    map.attributionControl.setPrefix('Leaflet | land: Natural Earth');
    const b = d.bounds;
    map.fitBounds([[b[1], b[0]], [b[3], b[2]]], { padding: [20, 20] });
    L.control.scale({ imperial: false }).addTo(map);

    const canvas = document.getElementById('layer-canvas');
    const ctx = canvas.getContext('2d');
    let screen = { x: new Float32Array(P.n), y: new Float32Array(P.n) };
    let drawn = null;

    function frame() {
      const size = map.getSize();
      const dpr = window.devicePixelRatio || 1;
      if (canvas.width !== size.x * dpr || canvas.height !== size.y * dpr) {
        canvas.width = size.x * dpr; canvas.height = size.y * dpr;
        canvas.style.width = size.x + 'px'; canvas.style.height = size.y + 'px';
      }
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      const S = 256 * Math.pow(2, map.getZoom());
      const o = map.latLngToContainerPoint([0, 0]);
      return { w: size.x, h: size.y, X: (u) => (u - 0.5) * S + o.x, Y: (v) => (v - 0.5) * S + o.y, S };
    }

    function draw() {
      const f = frame();
      const v = P.views[state.view];
      const cmp = state.compare >= 0 && state.compare !== state.view ? P.views[state.compare] : null;
      const count = { land: 0, unfilled: 0, flows: 0, stores: 0, dcs: 0, change_stores: 0, change_flows: 0 };
      ctx.clearRect(0, 0, f.w, f.h);
      const inView = (x, y, m) => x >= -m && y >= -m && x <= f.w + m && y <= f.h + m;

      if (state.layers.land) {
        ctx.beginPath();
        const L0 = P.land, st = L0.starts;
        for (let r = 0; r < st.length; r++) {
          const a = st[r], e = r + 1 < st.length ? st[r + 1] : L0.x.length;
          ctx.moveTo(f.X(L0.x[a]), f.Y(L0.y[a]));
          for (let i = a + 1; i < e; i++) ctx.lineTo(f.X(L0.x[i]), f.Y(L0.y[i]));
          ctx.closePath();
          count.land++;
        }
        ctx.fillStyle = '#f3f0e8'; ctx.fill('evenodd');
        ctx.strokeStyle = '#b9b3a6'; ctx.lineWidth = 0.6; ctx.stroke();
      }

      if (state.layers.unfilled) {
        const g = d.grid_deg;
        let max = 1;
        for (const c of v.unfilled) max = Math.max(max, c[2]);
        for (const c of v.unfilled) {
          const x0 = f.X(mx(c[0] * g)), x1 = f.X(mx((c[0] + 1) * g));
          const y0 = f.Y(my((c[1] + 1) * g)), y1 = f.Y(my(c[1] * g));
          ctx.fillStyle = 'rgba(214,40,40,' + (0.15 + 0.6 * Math.log1p(c[2]) / Math.log1p(max)).toFixed(3) + ')';
          ctx.fillRect(x0, y0, Math.max(1, x1 - x0), Math.max(1, y1 - y0));
          count.unfilled++;
        }
      }

      const srcXY = (s) => (s >= 0 ? [P.sx[s], P.sy[s]] : [P.dx[-s - 1], P.dy[-s - 1]]);
      if (state.layers.flows) {
        const fl = v.flows;
        let max = 1;
        for (let i = 0; i < fl.n; i++) max = Math.max(max, fl.orders[i]);
        // Three widths, one path each.
        const paths = [new Path2D(), new Path2D(), new Path2D()];
        for (let i = 0; i < fl.n; i++) {
          const [ux, uy] = srcXY(fl.from[i]);
          const t = fl.to[i];
          const k = Math.min(2, Math.floor(3 * Math.log1p(fl.orders[i]) / Math.log1p(max + 1)));
          paths[k].moveTo(f.X(ux), f.Y(uy));
          paths[k].lineTo(f.X(P.cx[t]), f.Y(P.cy[t]));
          count.flows++;
        }
        ctx.strokeStyle = 'rgba(231,111,81,0.35)';
        [0.6, 1.4, 2.6].forEach((w, k) => { ctx.lineWidth = w; ctx.stroke(paths[k]); });
      }

      if (cmp && state.layers.change) {
        // Flows whose orders changed: blue gained, red lost.
        const key = (fl, i) => fl.from[i] + ':' + fl.to[i];
        const before = new Map();
        for (let i = 0; i < cmp.flows.n; i++) before.set(key(cmp.flows, i), cmp.flows.orders[i]);
        const gained = new Path2D(), lost = new Path2D();
        const seen = new Set();
        const line = (p, fl, i) => {
          const [ux, uy] = srcXY(fl.from[i]);
          p.moveTo(f.X(ux), f.Y(uy)); p.lineTo(f.X(P.cx[fl.to[i]]), f.Y(P.cy[fl.to[i]]));
          count.change_flows++;
        };
        for (let i = 0; i < v.flows.n; i++) {
          const k = key(v.flows, i); seen.add(k);
          const a = before.get(k) || 0, bb = v.flows.orders[i];
          if (bb > a) line(gained, v.flows, i); else if (bb < a) line(lost, v.flows, i);
        }
        for (let i = 0; i < cmp.flows.n; i++) if (!seen.has(key(cmp.flows, i))) line(lost, cmp.flows, i);
        ctx.lineWidth = 1.2;
        ctx.strokeStyle = 'rgba(38,70,200,0.55)'; ctx.stroke(gained);
        ctx.strokeStyle = 'rgba(200,30,60,0.55)'; ctx.stroke(lost);
      }

      const sx = screen.x, sy = screen.y;
      for (let i = 0; i < P.n; i++) { sx[i] = f.X(P.sx[i]); sy[i] = f.Y(P.sy[i]); }
      if (state.layers.stores) {
        const classes = state.colour === 'stockouts' ? STOCK : UTIL;
        const r = f.S > 2e5 ? 3 : 2;
        const buckets = classes.map(() => []);
        for (let i = 0; i < P.n; i++) {
          if (!v.open[i] && v.orders[i] === 0) continue;
          if (!inView(sx[i], sy[i], 4)) continue;
          const val = state.colour === 'stockouts' ? v.stockouts[i]
            : (v.capacity[i] ? 100 * v.orders[i] / v.capacity[i] : (v.orders[i] ? 100 : 0));
          for (let c = 0; c < classes.length; c++) if (classes[c][2](val)) { buckets[c].push(i); break; }
        }
        buckets.forEach((idx, c) => {
          ctx.fillStyle = classes[c][1];
          for (const i of idx) ctx.fillRect(sx[i] - r / 2, sy[i] - r / 2, r, r);
          count.stores += idx.length;
        });
      }

      if (cmp && state.layers.change) {
        for (let i = 0; i < P.n; i++) {
          const dlt = v.orders[i] - cmp.orders[i];
          if (dlt === 0 || !inView(sx[i], sy[i], 10)) continue;
          ctx.beginPath();
          ctx.arc(sx[i], sy[i], Math.min(12, 2 + Math.sqrt(Math.abs(dlt))), 0, 2 * Math.PI);
          ctx.fillStyle = dlt > 0 ? 'rgba(38,70,200,0.5)' : 'rgba(200,30,60,0.5)';
          ctx.fill();
          count.change_stores++;
        }
      }

      if (state.layers.dcs) {
        ctx.lineWidth = 1.5; ctx.strokeStyle = '#fff'; ctx.fillStyle = '#6a3d9a';
        for (let j = 0; j < P.dx.length; j++) {
          const x = f.X(P.dx[j]), y = f.Y(P.dy[j]);
          ctx.fillRect(x - 5, y - 5, 10, 10); ctx.strokeRect(x - 5, y - 5, 10, 10);
          count.dcs++;
        }
      }
      drawn = count;
      legend(v, cmp, count);
      return count;
    }

    function fmt(x, digits) { return Number(x).toLocaleString('en-US', { maximumFractionDigits: digits || 0 }); }

    function legend(v, cmp, count) {
      const k = v.kpis;
      const classes = state.colour === 'stockouts' ? STOCK : UTIL;
      const pct = (a, b) => (b ? fmt(100 * a / b, 1) + '%' : '–');
      let h = '<b>' + escapeHtml(v.name) + '</b>';
      h += '<div>' + classes.map((c) => '<div><span class="sw" style="background:' + c[1] + '"></span>' + c[0] + '</div>').join('') + '</div>';
      h += '<div><span class="sw" style="background:#6a3d9a"></span>DC &nbsp; <span class="sw" style="background:rgba(231,111,81,.6)"></span>flow &nbsp; <span class="sw" style="background:rgba(214,40,40,.6)"></span>unfilled</div>';
      if (cmp) h += '<div><span class="sw" style="background:rgba(38,70,200,.6)"></span>more orders than ' + escapeHtml(cmp.name) + ' <span class="sw" style="background:rgba(200,30,60,.6)"></span>fewer</div>';
      h += '<table>';
      const row = (a, b, c) => { h += '<tr><td>' + a + '</td><td class="n">' + b + '</td><td class="n">' + (c === undefined ? '' : c) + '</td></tr>'; };
      const dk = cmp ? cmp.kpis : null;
      const delta = (a, b, digits) => (dk ? (a - b >= 0 ? '+' : '') + fmt(a - b, digits) : undefined);
      row('orders', fmt(k.orders), delta(k.orders, dk && dk.orders));
      row('fill rate', pct(k.filled, k.orders), dk ? delta(100 * k.filled / Math.max(1, k.orders), 100 * dk.filled / Math.max(1, dk.orders), 2) + ' pt' : undefined);
      row('from DCs', pct(k.from_dcs, k.orders));
      row('unfilled', fmt(k.unfilled), delta(k.unfilled, dk && dk.unfilled));
      row('mean distance', fmt(k.mean_km, 2) + ' km', delta(k.mean_km, dk && dk.mean_km, 2));
      row('stores used', fmt(k.stores_used), delta(k.stores_used, dk && dk.stores_used));
      row('stores at capacity', fmt(k.stores_at_capacity), delta(k.stores_at_capacity, dk && dk.stores_at_capacity));
      row('drawn', fmt(count.stores) + ' stores, ' + fmt(count.flows) + ' flows');
      h += '</table>';
      document.getElementById('legend').innerHTML = h;
    }

    function escapeHtml(s) {
      return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
    }

    // Tooltips: the nearest store or DC within 8 px, else the unfilled cell under the pointer.
    const tip = document.getElementById('tip');
    map.on('mousemove', (e) => {
      const p = e.containerPoint, v = P.views[state.view];
      const cmp = state.compare >= 0 && state.compare !== state.view ? P.views[state.compare] : null;
      let best = -1, bd = 64;
      if (state.layers.stores) {
        for (let i = 0; i < P.n; i++) {
          const dx = screen.x[i] - p.x, dy = screen.y[i] - p.y, dd = dx * dx + dy * dy;
          if (dd < bd && (v.open[i] || v.orders[i])) { bd = dd; best = i; }
        }
      }
      let html = null;
      if (best >= 0) {
        const u = v.capacity[best] ? fmt(100 * v.orders[best] / v.capacity[best], 1) + '%' : '–';
        html = '<b>store ' + escapeHtml(P.ids[best]) + '</b> ' + escapeHtml(P.cityNames[P.storeCity[best]] || '') +
          '<br>orders ' + fmt(v.orders[best]) + ' of ' + fmt(v.capacity[best]) + ' (' + u + ')' +
          '<br>stock-outs ' + fmt(v.stockouts[best]) + ' SKUs' + (v.open[best] ? '' : '<br>closed');
        if (cmp) html += '<br>change from ' + escapeHtml(cmp.name) + ': ' + (v.orders[best] - cmp.orders[best] >= 0 ? '+' : '') + fmt(v.orders[best] - cmp.orders[best]) + ' orders';
      } else {
        const ll = e.latlng, g = d.grid_deg;
        const x = Math.floor(ll.lng / g), y = Math.floor(ll.lat / g);
        const c = state.layers.unfilled && v.unfilled.find((c) => c[0] === x && c[1] === y);
        if (c) html = '<b>unfilled</b><br>' + fmt(c[2]) + ' orders, ' + fmt(c[3]) + ' SKUs<br>most asked: ' + escapeHtml(c[4]);
      }
      if (state.layers.dcs) {
        const f = frame();
        d.dcs.forEach((dc, j) => {
          const dx = f.X(P.dx[j]) - p.x, dy = f.Y(P.dy[j]) - p.y;
          if (dx * dx + dy * dy < 64) html = '<b>DC ' + escapeHtml(dc.id) + '</b><br>orders ' + fmt(v.dcs[j]);
        });
      }
      if (html) {
        tip.innerHTML = html; tip.style.display = 'block';
        tip.style.left = (p.x + 14) + 'px'; tip.style.top = (p.y + 14) + 'px';
      } else tip.style.display = 'none';
    });
    map.on('mouseout', () => { tip.style.display = 'none'; });

    // Controls.
    document.getElementById('title').textContent = d.title;
    const viewSel = document.getElementById('view'), cmpSel = document.getElementById('compare');
    cmpSel.add(new Option('nothing', -1));
    P.views.forEach((v, i) => { viewSel.add(new Option(v.name, i)); cmpSel.add(new Option(v.name, i)); });
    viewSel.value = state.view; cmpSel.value = state.compare;
    document.getElementById('colour').value = state.colour;
    const redraw = () => {
      location.hash = 'view=' + state.view + (state.compare >= 0 ? '&compare=' + state.compare : '') + '&colour=' + state.colour;
      draw();
    };
    viewSel.onchange = () => { state.view = +viewSel.value; redraw(); };
    cmpSel.onchange = () => { state.compare = +cmpSel.value; redraw(); };
    document.getElementById('colour').onchange = (e) => { state.colour = e.target.value; redraw(); };
    document.querySelectorAll('input[data-layer]').forEach((el) => {
      el.onchange = () => { state.layers[el.dataset.layer] = el.checked; draw(); };
    });
    map.on('move zoomend resize viewreset', draw);

    const count = draw();
    const ms = performance.now() - t0;
    // ms: from this script's start; page_ms: from navigation start (file read and parsed too).
    window.omnirouteMap = { ready: true, drawn: count, ms, page_ms: performance.now(), views: P.views.length, stores: P.n };
    const st = document.getElementById('status');
    st.textContent = JSON.stringify(window.omnirouteMap);
    st.dataset.ready = '1';
    void drawn;
  }

  function fail(message) {
    const st = document.getElementById('status');
    st.textContent = JSON.stringify({ ready: false, error: String(message) });
    st.dataset.ready = '1';
    document.getElementById('legend').textContent = 'The map could not load: ' + message;
  }

  const load = async (d) => {
    await Promise.all(packedStrings(d).map(inflate));
    start(d);
  };
  try {
    const inline = JSON.parse(document.getElementById('omniroute-data').textContent);
    const data = inline ? Promise.resolve(inline)
      // From the origin: a page opened as http://user:key@host/map would otherwise resolve the
      // path with the credentials in it, which fetch refuses (they are sent as Basic anyway).
      : fetch(new URL(window.OMNIROUTE_DATA_URL, location.origin), { credentials: 'same-origin' })
        .then((r) => (r.ok ? r.json() : r.text().then((t) => Promise.reject(new Error(r.status + ' ' + t)))));
    data.then(load).catch((e) => fail(e && e.stack ? e.stack : e));
  } catch (e) {
    fail(e && e.stack ? e.stack : e);
  }
})();

/*
 * bench/probe.js: injected by bench/display.py into every page before the page's own scripts
 * (CDP Page.addScriptToEvaluateOnNewDocument). It counts, in the page, the *drawn frames* of the
 * image: animation frames at which what the image shows changed, and for each of them the pulse ->
 * pixels latency (Date.now() at that animation frame minus the pulse timestamp of the frame shown).
 *
 * What "changed" means, per way of drawing (all public DOM / web APIs, nothing of the app's code):
 *  - the app's painter (canvas.sov-frame in #image-canvas): a nearest-neighbour 32x32 copy of that
 *    canvas, compared with the previous animation frame's copy;
 *  - plotly.js drawing the heatmap (`?draw=plotly`, bench/naive_app.py): the heatmap layer's
 *    <image> in #image-graph gets a new picture (its href) whenever plotly.js redraws it.
 * Which pulse is shown: for the painter and ?draw=plotly, the header of the newest /api/frame
 * answer (window.fetch wrapped; the page asks one frame at a time and draws it on arrival); for the
 * naive baseline, `bench_timestamp` in the figure's layout.meta (set by bench/naive_app.py).
 *
 * Resource Timing of the frame requests (/api/frame, or the naive baseline's Dash callback):
 * round trip (`duration`) and server time (requestStart -> responseStart), to see where a frame's time goes.
 *
 * window.__probe.take() returns {drawn, ms, latencies_ms, answers, rtt_ms, server_ms} since the previous take().
 */
(function () {
    "use strict";
    var SAMPLE = 32;
    var state = {drawn: 0, latencies: [], answers: 0, since: Date.now(), pulse: null, sample: null, href: null,
                 small: null, rtt: [], server: []};

    if (window.PerformanceObserver) {
        new window.PerformanceObserver(function (list) {
            list.getEntries().forEach(function (e) {
                if (e.name.indexOf("api/frame?") >= 0 || e.name.indexOf("_dash-update-component") >= 0) {
                    state.rtt.push(e.duration);
                    state.server.push(e.responseStart - e.requestStart);
                }
            });
        }).observe({type: "resource"});
    }

    var fetch0 = window.fetch;
    window.fetch = function (input) {
        var reply = fetch0.apply(this, arguments);
        var url = typeof input === "string" ? input : (input && input.url) || "";
        if (url.indexOf("api/frame?") >= 0) {
            reply.then(function (r) {
                if (r.status === 200) {
                    r.clone().arrayBuffer().then(header, function () {});
                }
            }, function () {});
        }
        return reply;
    };

    function header(body) {
        var n = new DataView(body).getUint32(0, true);
        var meta = JSON.parse(new TextDecoder().decode(new Uint8Array(body, 4, n)));
        state.pulse = meta.timestamp;
        state.answers += 1;
    }

    function canvasSample() {
        var canvas = document.querySelector("#image-canvas canvas.sov-frame");
        if (!canvas || !canvas.width || !canvas.height) {
            return null;
        }
        if (!state.small) {
            state.small = document.createElement("canvas");
            state.small.width = state.small.height = SAMPLE;
        }
        var ctx = state.small.getContext("2d", {willReadFrequently: true});
        ctx.imageSmoothingEnabled = false;
        ctx.clearRect(0, 0, SAMPLE, SAMPLE);
        ctx.drawImage(canvas, 0, 0, SAMPLE, SAMPLE);
        var data = ctx.getImageData(0, 0, SAMPLE, SAMPLE).data, hash = 0;
        for (var i = 0; i < data.length; i++) {
            hash = (hash * 31 + data[i]) | 0;
        }
        return hash;
    }

    function heatmapHref() {
        var image = document.querySelector("#image-graph .hm image");
        return image ? image.getAttribute("href") || image.getAttribute("xlink:href") : null;
    }

    function shownPulse() {
        var gd = document.querySelector("#image-graph .js-plotly-plot");
        var meta = gd && gd.layout && gd.layout.meta;
        return meta && typeof meta.bench_timestamp === "number" ? meta.bench_timestamp : state.pulse;
    }

    function tick() {
        var now = Date.now(), sample = canvasSample(), href = heatmapHref();
        var changed = (sample !== null && state.sample !== null && sample !== state.sample) ||
                      (href !== null && state.href !== null && href !== state.href);
        state.sample = sample;
        state.href = href;
        if (changed) {
            state.drawn += 1;
            var pulse = shownPulse();
            if (typeof pulse === "number") {
                state.latencies.push(now - pulse * 1000);
            }
        }
        window.requestAnimationFrame(tick);
    }
    window.requestAnimationFrame(tick);

    window.__probe = {
        take: function () {
            var now = Date.now();
            var out = {drawn: state.drawn, ms: now - state.since, latencies_ms: state.latencies,
                       answers: state.answers, rtt_ms: state.rtt, server_ms: state.server};
            state.rtt = [];
            state.server = [];
            performance.clearResourceTimings();
            state.drawn = 0;
            state.latencies = [];
            state.answers = 0;
            state.since = now;
            return out;
        }
    };
})();

/*
 * Self-clocking update loops for Stream Online Viewer.
 *
 * A dcc.Interval fires whether or not the previous answer has arrived, and dash-renderer drops an
 * answer that is overtaken by a newer request (plotly/dash#943): a server slower than the interval
 * then never updates the page at all. Here each loop sends its next request only after the
 * previous answer arrived, waiting whatever is left of the period; a slow server or a slow browser
 * therefore lowers the frame rate instead of freezing it. A 1 s watchdog restarts a loop whose
 * answer never came (server restarted, network glitch). Hidden tabs and paused pages send nothing.
 */
(function () {
    "use strict";

    var loops = {
        image: {store: "image-request", response: "image-response", n: 0, sentAt: 0, pending: false, timer: null},
        history: {store: "history-request", response: "history-response", n: 0, sentAt: 0, pending: false, timer: null}
    };
    var state = {paused: false, config: {image_period_ms: 100, history_period_ms: 500}};
    var STUCK_MS = 5000;
    // Readings and the info line are asked for this often at most: each changed text costs
    // dash-renderer a re-index of the whole layout, and 4 Hz is as fast as anyone reads numbers.
    var TEXT_PERIOD_MS = 250;
    var textsAt = -Infinity;

    function graphSize() {
        var el = document.getElementById("image-graph");
        return el ? {w: el.clientWidth, h: el.clientHeight} : {w: 0, h: 0};
    }

    function send(name) {
        var loop = loops[name];
        if (loop.timer !== null) {
            clearTimeout(loop.timer);
            loop.timer = null;
        }
        if (state.paused || document.hidden || !window.dash_clientside || !window.dash_clientside.set_props) {
            return;
        }
        loop.n += 1;
        loop.sentAt = performance.now();
        loop.pending = true;
        var size = graphSize();
        var data = {n: loop.n, w: size.w, h: size.h};
        if (name === "image") {
            data.texts = loop.sentAt - textsAt >= TEXT_PERIOD_MS;
            if (data.texts) {
                textsAt = loop.sentAt;
            }
        }
        window.dash_clientside.set_props(loop.store, {data: data});
    }

    function period(name) {
        var key = name === "image" ? "image_period_ms" : "history_period_ms";
        return state.config[key] || 100;
    }

    function answered(name) {
        var loop = loops[name];
        loop.pending = false;
        if (loop.timer !== null) {
            clearTimeout(loop.timer);
        }
        var wait = Math.max(0, period(name) - (performance.now() - loop.sentAt));
        loop.timer = setTimeout(function () {
            loop.timer = null;
            send(name);
        }, wait);
    }

    function kick() {
        Object.keys(loops).forEach(function (name) {
            send(name);
        });
    }

    document.addEventListener("visibilitychange", function () {
        if (!document.hidden) {
            kick();
        }
    });

    window.streamViewerLoops = loops;  // for the browser benchmark and tests

    window.dash_clientside = Object.assign({}, window.dash_clientside, {
        viewer: {
            imageAnswered: function () {
                answered("image");
                return window.dash_clientside.no_update;
            },
            historyAnswered: function () {
                answered("history");
                return window.dash_clientside.no_update;
            },
            watchdog: function (nIntervals, config, paused) {
                state.config = config || state.config;
                state.paused = !!paused;
                var now = performance.now();
                Object.keys(loops).forEach(function (name) {
                    var loop = loops[name];
                    var idle = !loop.pending && loop.timer === null;
                    var stuck = loop.pending && now - loop.sentAt > STUCK_MS;
                    if (idle || stuck) {
                        send(name);
                    }
                });
                return window.dash_clientside.no_update;
            },
            pause: function (nClicks, paused) {
                var next = nClicks ? !paused : !!paused;
                state.paused = next;
                if (!next) {
                    kick();  // resume catches up at once
                }
                return [next, next ? "Resume" : "Pause", next ? "success" : "warning"];
            },
            viewFromRelayout: function (relayout, current) {
                // Keep only the zoom region of the image axes; autorange resets it.
                var view = Object.assign({}, current || {});
                if (!relayout) {
                    return view;
                }
                ["x", "y"].forEach(function (axis) {
                    var key = axis + "axis";
                    if (relayout[key + ".autorange"] || relayout["autosize"]) {
                        view[axis] = null;
                    }
                    if (relayout[key + ".range[0]"] !== undefined && relayout[key + ".range[1]"] !== undefined) {
                        view[axis] = [relayout[key + ".range[0]"], relayout[key + ".range[1]"]];
                    } else if (Array.isArray(relayout[key + ".range"])) {
                        view[axis] = relayout[key + ".range"].slice(0, 2);
                    }
                });
                return view;
            },
            settings: function (colormap, scale, rangeMode, zmin, zmax) {
                return {colormap: colormap, scale: scale, range_mode: rangeMode, zmin: zmin, zmax: zmax};
            }
        }
    });
})();

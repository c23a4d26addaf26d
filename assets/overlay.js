/*
 * What the painter writes over the picture: the frame's pulse id, PAUSED, STALE with its age
 * (counting every second), cam_server's processing_error, a camera that cannot be shown, and the
 * crosshair at the fit mean ± σ. All text goes in with textContent, never as markup.
 * Also the colour bar's tick labels (round values in the image's units, from each frame) and the
 * `?draw=plotly` path that hands frames to plotly.js itself.
 */
(function () {
    "use strict";
    var sov = window.sov = window.sov || {};
    var nodes = null;

    function root() {
        var host = document.getElementById("image-overlay");
        if (!host) {
            return null;
        }
        if (!nodes || nodes.host !== host) {
            host.textContent = "";
            var make = function (cls) {
                var node = document.createElement("div");
                node.className = cls;
                host.appendChild(node);
                return node;
            };
            nodes = {host: host, info: make("sov-info"), stale: make("sov-stale"), banner: make("sov-banner"),
                     message: make("sov-message")};
        }
        return nodes;
    }

    function set(node, text) {
        if (node.textContent !== text) {
            node.textContent = text;
        }
        node.style.display = text ? "" : "none";
    }

    sov.overlay = {
        frame: function (frame, g) {
            var n = root();
            if (!n) {
                return;
            }
            var meta = frame.meta, p = sov.painter;
            var text = "pulse " + meta.pulse_id + (p.paused ? " · PAUSED" : "");
            if (meta.processing.average > 1) {
                text += " · mean of " + meta.processing.average;
            }
            if (meta.processing.background) {
                text += " · background subtracted";
            }
            if (meta.processing.note) {
                text += " · " + meta.processing.note;
            }
            if (meta.saturated) {
                text += " · " + meta.saturated + " saturated in view";
            }
            set(n.info, text);
            set(n.banner, meta.processing_error ? "processing error: " + meta.processing_error : "");
            // the overlay box: the part of the plot area the picture covers
            var b = sov.canvas.frameBox(meta, g), left = Math.max(0, b.left), top = Math.max(0, b.top);
            var right = Math.min(g.image.width, b.left + b.width), bottom = Math.min(g.image.height, b.top + b.height);
            Object.assign(n.host.style, {left: g.image.left + left + "px", top: g.image.top + top + "px",
                                         width: Math.max(0, right - left) + "px", height: Math.max(0, bottom - top) + "px"});
        },
        message: function (text) {
            var n = root();
            if (n) {
                set(n.message, text);
            }
        },
        tick: function () {
            // STALE and its age, once a second whatever else happens
            var n = root(), p = sov.painter, s = p.stream;
            if (!n) {
                return;
            }
            var text = "";
            if (s && s.state === "stalled" && p.messageAt !== null) {
                text = "STALE — last frame " + sov.age((Date.now() - p.messageAt) / 1000) + " ago";
            } else if (s && (s.state === "waiting" || s.state === "connecting")) {
                text = s.state === "waiting" ? "waiting for the first frame…" : "connecting…";
            } else if (s && s.state === "error") {
                text = "camera not available: " + (s.error || "");
            }
            set(n.stale, text);
        },
        crosshair: function (ctx, frame, g) {
            var p = sov.painter, beam = frame.meta.beam, meta = frame.meta;
            if (!p.config || !p.config.crosshair || beam.x === null || beam.y === null || meta.processing_error) {
                return;
            }
            var px = p.toPixels(g);
            var x = meta.x.origin + beam.x * meta.x.step, y = meta.y.origin + beam.y * meta.y.step;
            var sx = (beam.sigma_x || 0) * meta.x.step, sy = (beam.sigma_y || 0) * meta.y.step;
            ctx.save();
            ctx.beginPath();
            ctx.rect(g.image.left, g.image.top, g.image.width, g.image.height);
            ctx.clip();
            ctx.strokeStyle = "#ffffff";
            ctx.lineWidth = 1;
            // on pixel centres: crisp lines, not two half-bright ones
            var cx = Math.round(px.x(x)) + 0.5, cy = Math.round(px.y(y)) + 0.5;
            ctx.beginPath();
            ctx.moveTo(Math.round(px.x(x - sx)), cy);
            ctx.lineTo(Math.round(px.x(x + sx)), cy);
            ctx.moveTo(cx, Math.round(px.y(y - sy)));
            ctx.lineTo(cx, Math.round(px.y(y + sy)));
            ctx.stroke();
            ctx.restore();
        }
    };

    sov.age = function (seconds) {
        if (seconds < 10) {
            return seconds.toFixed(1) + " s";
        }
        if (seconds < 60) {
            return Math.round(seconds) + " s";
        }
        var minutes = Math.floor(seconds / 60);
        return minutes < 60 ? minutes + " min " + Math.floor(seconds % 60) + " s" :
            Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
    };

    // ----------------------------------------------------------------------------- colour bar

    var wanted = null;
    sov.colorbar = {
        want: function (ticks) {
            wanted = ticks;
            sov.colorbar.apply();
        },
        apply: function () {
            // The figure carries the colour scale; each frame says where its round values are.
            var gd = sov.painter.gd, trace = gd && gd.data && gd.data[0];
            if (!wanted || !trace || !window.Plotly || !trace.colorbar) {
                return;
            }
            var bar = trace.colorbar;
            if (JSON.stringify(bar.ticktext) === JSON.stringify(wanted.text) &&
                    JSON.stringify(bar.tickvals) === JSON.stringify(wanted.vals)) {
                return;
            }
            window.Plotly.restyle(gd, {"colorbar.tickvals": [wanted.vals], "colorbar.ticktext": [wanted.text]}, [0]);
        }
    };

    // ----------------------------------------------------------------------- ?draw=plotly

    sov.rows = function (frame) {
        var meta = frame.meta, rows = [];
        for (var r = 0; r < meta.rows; r++) {
            rows.push(Array.prototype.slice.call(frame.parts.levels.subarray(r * meta.cols, (r + 1) * meta.cols)));
        }
        return rows;
    };

    sov.plotlyTraces = function (frame) {
        // The frame as plotly traces: heatmap (levels, bins placed by x0/dx), profiles.
        var meta = frame.meta, r = meta.region, f = meta.bin;
        var x0 = meta.x.origin + (r[0] + (f - 1) / 2) * meta.x.step, y0 = meta.y.origin + (r[2] + (f - 1) / 2) * meta.y.step;
        var centres = function (a, first, n) {
            var out = [];
            for (var i = 0; i < n; i++) {
                out.push(a.origin + (first + (i + 0.5) * f - 0.5) * a.step);
            }
            return out;
        };
        var px = frame.parts.x_profile, py = frame.parts.y_profile;
        return {
            heatmap: {z: sov.rows(frame), x: null, y: null, x0: x0, dx: f * meta.x.step, y0: y0, dy: f * meta.y.step},
            profileX: {x: centres(meta.x, r[0], px ? px.length : 0), y: px ? Array.from(px) : []},
            profileY: {y: centres(meta.y, r[2], py ? py.length : 0), x: py ? Array.from(py) : []}
        };
    };

    var drawnZ = null;

    sov.plotlyStale = function (gd) {
        return !gd.data || !gd.data[0] || gd.data[0].z !== drawnZ;
    };

    sov.plotlyDraw = function (gd, frame) {
        if (!window.Plotly) {
            return;
        }
        var t = sov.plotlyTraces(frame), h = t.heatmap;
        drawnZ = h.z;
        window.Plotly.restyle(gd, {z: [h.z], x: [h.x], y: [h.y], x0: [h.x0], dx: [h.dx], y0: [h.y0], dy: [h.dy],
                                   opacity: [1]}, [0]);
        window.Plotly.restyle(gd, {x: [t.profileX.x, t.profileY.x], y: [t.profileX.y, t.profileY.y]}, [1, 2]);
    };
})();

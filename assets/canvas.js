/*
 * The painter's canvas layer over #image-graph (see painter.js): a box clipped to the image's plot
 * area holding a canvas of one pixel per bin, which the compositor scales to the bins' size on screen,
 * and one canvas for the profile panels' curves and the crosshair. Levels go through a 256-colour
 * table built from the frame's colour scale, interpolated between its stops as plotly.js does, so
 * the canvas and plotly's own heatmap of the same frame agree pixel for pixel (tests/test_browser_frames.py).
 */
(function () {
    "use strict";
    var sov = window.sov = window.sov || {};
    var LINE = {profile: "#f39c12", fit: "#5dade2", stream_fit: "#e74c3c"};
    var state = {layer: null, lut: null, lutKey: null};

    function layer() {
        // Under the graph, in #image-canvas (the app's own element, the graph's box): plotly.js
        // draws its figure over it on a transparent background, with an invisible heatmap cell, so
        // its axes, colour bar, regions and zoom box stay on top and its own DOM is never touched.
        // A box clipped to the image's plot area holds a canvas of one pixel per bin, which the
        // compositor scales; one canvas takes the profile panels' curves and the crosshair.
        var host = document.getElementById("image-canvas");
        if (!host) {
            return null;
        }
        if (!state.layer || state.layer.root.parentNode !== host) {
            var make = function (tag, parent, style) {
                var node = document.createElement(tag);
                Object.assign(node.style, {position: "absolute", left: "0", top: "0"}, style || {});
                if (parent) {
                    parent.appendChild(node);
                }
                return node;
            };
            host.textContent = "";
            var root = make("div", host, {pointerEvents: "none", width: "100%", height: "100%"});
            root.className = "sov-live-layer";
            state.layer = {root: root, clip: make("div", root, {overflow: "hidden"}),
                           lines: make("canvas", root)};
            state.layer.lines.className = "sov-lines";
            state.layer.canvas = make("canvas", state.layer.clip, {imageRendering: "pixelated"});
            state.layer.canvas.className = "sov-frame";
        }
        return state.layer;
    }

    function place(node, b) {
        node.style.left = b.left + "px";
        node.style.top = b.top + "px";
        node.style.width = b.width + "px";
        node.style.height = b.height + "px";
    }

    function colourTable(meta) {
        var key = JSON.stringify([meta.colorscale, meta.saturated_color]);
        if (state.lutKey === key) {
            return state.lut;
        }
        var stops = meta.colorscale.map(function (s) { return [Number(s[0])].concat(rgb(s[1])); });
        var lut = new Uint32Array(256), sat = rgb(meta.saturated_color);
        for (var level = 0; level < 256; level++) {
            var c = level === 255 ? sat : interpolate(stops, level / 254);
            lut[level] = (255 << 24 | c[2] << 16 | c[1] << 8 | c[0]) >>> 0;
        }
        state.lut = lut;
        state.lutKey = key;
        return lut;
    }

    function rgb(text) {
        return text.replace(/[^\d,.]/g, "").split(",").slice(0, 3).map(Number);
    }
    sov.rgb = rgb;

    function interpolate(stops, t) {
        // as plotly.js: linear in RGB between the colour scale's stops, rounded
        var j = 1;
        while (j < stops.length - 1 && stops[j][0] < t) {
            j++;
        }
        var a = stops[j - 1], b = stops[Math.min(j, stops.length - 1)];
        var f = b[0] > a[0] ? (t - a[0]) / (b[0] - a[0]) : 0;
        return [1, 2, 3].map(function (c) { return Math.round(a[c] + (b[c] - a[c]) * f); });
    }

    function frameBox(meta, g) {
        // Where the frame's bins go: from the outer edge of its first to that of its last bin.
        var px = sov.painter.toPixels(g), r = meta.region, f = meta.bin;
        var xa = px.x(meta.x.origin + (r[0] - 0.5) * meta.x.step);
        var xb = px.x(meta.x.origin + (r[0] + meta.cols * f - 0.5) * meta.x.step);
        var ya = px.y(meta.y.origin + (r[2] - 0.5) * meta.y.step);
        var yb = px.y(meta.y.origin + (r[2] + meta.rows * f - 0.5) * meta.y.step);
        return {left: Math.min(xa, xb) - g.image.left, top: Math.min(ya, yb) - g.image.top,
                width: Math.abs(xb - xa), height: Math.abs(yb - ya), flipX: xb < xa, flipY: yb < ya};
    }

    function paintImage(frame, g) {
        var meta = frame.meta, canvas = state.layer.canvas, levels = frame.parts.levels;
        place(state.layer.clip, g.image);
        var b = frameBox(meta, g);
        place(canvas, b);
        canvas.style.transform = (b.flipX || b.flipY) ? "scale(" + (b.flipX ? -1 : 1) + "," + (b.flipY ? -1 : 1) + ")" : "";
        if (canvas.width !== meta.cols || canvas.height !== meta.rows) {
            canvas.width = meta.cols;
            canvas.height = meta.rows;
        }
        var ctx = canvas.getContext("2d"), lut = colourTable(meta);
        var pixels = ctx.createImageData(meta.cols, meta.rows), out = new Uint32Array(pixels.data.buffer);
        for (var i = 0; i < levels.length; i++) {
            out[i] = lut[levels[i]];
        }
        ctx.putImageData(pixels, 0, 0);
    }

    function paintProfiles(frame, g) {
        var canvas = state.layer.lines, ratio = window.devicePixelRatio || 1;
        place(canvas, {left: 0, top: 0, width: g.width, height: g.height});
        if (canvas.width !== Math.round(g.width * ratio) || canvas.height !== Math.round(g.height * ratio)) {
            canvas.width = Math.round(g.width * ratio);
            canvas.height = Math.round(g.height * ratio);
        }
        var ctx = canvas.getContext("2d");
        ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
        ctx.clearRect(0, 0, g.width, g.height);
        var meta = frame.meta, px = sov.painter.toPixels(g), r = meta.region, f = meta.bin;
        [["x", g.profileX], ["y", g.profileY]].forEach(function (axis) {
            var name = axis[0], panel = axis[1], a = meta[name], first = name === "x" ? r[0] : r[2];
            var along = function (i) {
                var coordinate = a.origin + (first + (i + 0.5) * f - 0.5) * a.step;
                return name === "x" ? px.x(coordinate) : px.y(coordinate);
            };
            var curves = ["profile", "fit", "stream_fit"].map(function (kind) { return [kind, frame.parts[name + "_" + kind]]; })
                .filter(function (c) { return c[1] && c[1].length > 1; });
            var scale = extent(curves.map(function (c) { return c[1]; }));
            if (!scale) {
                return;
            }
            ctx.save();
            ctx.beginPath();
            ctx.rect(name === "x" ? g.image.left : panel.left, name === "x" ? panel.top : g.image.top,
                     name === "x" ? g.image.width : panel.width, name === "x" ? panel.height : g.image.height);
            ctx.clip();
            curves.forEach(function (c) {  // the profile under the fits; the stream's fit dashed
                ctx.setLineDash(c[0] === "stream_fit" ? [4, 3] : []);
                line(ctx, c[1], along, scale, panel, name === "y", LINE[c[0]], c[0] === "profile" ? 2 : 1.2);
            });
            ctx.setLineDash([]);
            ctx.restore();
        });
        sov.overlay.crosshair(ctx, frame, g);
    }

    function extent(arrays) {
        var lo = Infinity, hi = -Infinity;
        arrays.forEach(function (values) {
            for (var i = 0; i < values.length; i++) {
                var v = values[i];
                if (v < lo) { lo = v; }
                if (v > hi) { hi = v; }
            }
        });
        if (!isFinite(lo) || !isFinite(hi)) {
            return null;
        }
        var pad = (hi - lo) * 0.05 || 1;
        return {lo: lo - pad, hi: hi + pad};
    }

    function line(ctx, values, along, scale, panel, vertical, colour, width) {
        ctx.strokeStyle = colour;
        ctx.lineWidth = width;
        ctx.beginPath();
        var started = false;
        for (var k = 0; k < values.length; k++) {
            if (!isFinite(values[k])) {
                started = false;
                continue;
            }
            var a = along(k), v = (values[k] - scale.lo) / (scale.hi - scale.lo);
            var x = vertical ? panel.left + v * panel.width : a;
            var y = vertical ? a : panel.top + panel.height - v * panel.height;
            ctx[started ? "lineTo" : "moveTo"](x, y);
            started = true;
        }
        ctx.stroke();
    }


    sov.canvas = {
        layer: layer,
        frameBox: frameBox,
        paint: function (frame, g) {
            paintImage(frame, g);
            paintProfiles(frame, g);
        }
    };
})();

/*
 * Operator tools in the page: the histogram of the frame on screen (its own small plotly plot; a
 * drag across it sets the manual colour range) and the PNG snapshot of the picture as shown
 * (drawn by plotly.js from the frame itself, with camera, pulse id and UTC time printed on it).
 */
(function () {
    "use strict";
    var sov = window.sov = window.sov || {};
    var HISTOGRAM_MS = 500;
    var state = {at: 0, div: null, bound: null};

    function setProps(id, props) {
        window.dash_clientside.set_props(id, props);
    }

    sov.histogram = {
        frame: function (frame) {
            var p = sov.painter, div = document.getElementById("histogram-plot"), now = performance.now();
            if (!div || !window.Plotly || !p.config || !p.config.toolsOpen || div.offsetParent === null ||
                    (now - state.at < HISTOGRAM_MS && !p.paused)) {
                return;
            }
            state.at = now;
            var meta = frame.meta, h = meta.histogram, counts = frame.parts.histogram;
            var width = (h.hi - h.lo) / h.bins, x = [];
            for (var i = 0; i < h.bins; i++) {
                x.push(h.lo + (i + 0.5) * width);
            }
            var line = function (v) {
                return {type: "line", xref: "x", yref: "paper", x0: v, x1: v, y0: 0, y1: 1,
                        line: {color: "#f39c12", width: 1.5}};
            };
            var layout = {margin: {l: 34, r: 4, t: 4, b: 22}, height: 110, width: 260, dragmode: "select",
                          selectdirection: "h", paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
                          font: {color: "#ccc", size: 9}, bargap: 0, showlegend: false,
                          xaxis: {title: {text: ""}, nticks: 4}, yaxis: {type: p.config.histogramLog ? "log" : "linear",
                                                                         nticks: 3},
                          shapes: [line(meta.range[0]), line(meta.range[1])]};
            window.Plotly.react(div, [{type: "bar", x: x, y: Array.from(counts), marker: {color: "#5dade2"},
                                       hoverinfo: "x+y"}], layout, {displayModeBar: false});
            if (state.bound !== div && typeof div.on === "function") {
                state.bound = div;
                div.on("plotly_selected", function (event) {
                    var range = event && event.range && event.range.x;
                    if (range && range[1] > range[0]) {
                        setProps("image-range-mode", {value: "manual"});
                        setProps("image-range-min", {value: Number(range[0].toPrecision(6))});
                        setProps("image-range-max", {value: Number(range[1].toPrecision(6))});
                    }
                });
            }
        }
    };

    function utc(epoch) {
        return new Date(epoch * 1000).toISOString().replace(/\.\d+Z$/, "Z");
    }

    sov.snapshotPng = function () {
        // The picture as shown: plotly.js's own image of the figure (axes, colour bar, regions) with the
        // painter's canvases drawn over it where they are on screen, on the page's dark background,
        // and the camera, pulse id and UTC time printed above.
        var p = sov.painter, gd = p.gd, frame = p.frame, g = p.geometry;
        var host = document.getElementById("image-canvas");
        if (!gd || !frame || !g || !window.Plotly || !host) {
            return;
        }
        var meta = frame.meta, top = 24, ratio = 2;
        var text = meta.camera + " · pulse " + meta.pulse_id + " · " + utc(meta.timestamp) + " UTC";
        var name = (meta.camera + "_pulse" + meta.pulse_id + "_" + utc(meta.timestamp).replace(/[-:]/g, ""))
            .replace(/[^A-Za-z0-9_.+-]/g, "_") + ".png";
        window.Plotly.toImage(gd, {format: "png", width: g.width, height: g.height, scale: ratio}).then(function (url) {
            var figure = new Image();
            figure.onload = function () {
                var out = document.createElement("canvas");
                out.width = g.width * ratio;
                out.height = (g.height + top) * ratio;
                var ctx = out.getContext("2d");
                ctx.scale(ratio, ratio);
                ctx.fillStyle = "#272b30";
                ctx.fillRect(0, 0, g.width, g.height + top);
                ctx.fillStyle = "#eeeeee";
                ctx.font = "13px sans-serif";
                ctx.fillText(text, 8, 17);
                ctx.translate(0, top);
                paintLayers(ctx, host, g);
                ctx.drawImage(figure, 0, 0, g.width, g.height);
                download(out.toDataURL("image/png"), name);
            };
            figure.src = url;
        });
    };

    function paintLayers(ctx, host, g) {
        // The painter's canvases as they sit on screen (CSS boxes relative to the graph's box).
        var origin = host.getBoundingClientRect();
        var frame = host.querySelector("canvas.sov-frame"), lines = host.querySelector("canvas.sov-lines");
        var clip = frame.parentNode.getBoundingClientRect(), box = frame.getBoundingClientRect();
        ctx.save();
        ctx.beginPath();
        ctx.rect(clip.left - origin.left, clip.top - origin.top, clip.width, clip.height);
        ctx.clip();
        ctx.imageSmoothingEnabled = false;
        var flipX = frame.style.transform.indexOf("scale(-1") >= 0, flipY = /,\s*-1\)/.test(frame.style.transform);
        ctx.translate(box.left - origin.left + (flipX ? box.width : 0), box.top - origin.top + (flipY ? box.height : 0));
        ctx.scale(flipX ? -1 : 1, flipY ? -1 : 1);
        ctx.drawImage(frame, 0, 0, box.width, box.height);
        ctx.restore();
        ctx.drawImage(lines, 0, 0, g.width, g.height);
    }

    function download(url, name) {
        var link = document.createElement("a");
        link.href = url;
        link.download = name;
        document.body.appendChild(link);
        link.click();
        link.remove();
    }
})();

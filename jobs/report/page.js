// lwaffect report: draws each subject's timeline when it comes near the screen.
// The Plotly library and every figure are stored gzip-compressed in base64 inside this file; they are
// inflated in the browser (DecompressionStream), so the page needs no network and no server.
(function () {
  "use strict";

  async function inflate(id) {
    const text = document.getElementById(id).textContent.trim();
    const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return await new Response(stream).text();
  }

  let library = null;
  function loadPlotly() {
    if (library === null) {
      library = inflate("plotly-library").then((source) => {
        const script = document.createElement("script");
        script.textContent = source;
        document.head.appendChild(script);
      });
    }
    return library;
  }

  const config = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

  function render(div) {
    if (!div._drawn) {
      div.dataset.state = "loading";
      div._drawn = (async () => {
        try {
          await loadPlotly();
          const figure = JSON.parse(await inflate(div.dataset.figure));
          await Plotly.newPlot(div, figure.data, figure.layout, config);
          div.dataset.state = "rendered";
        } catch (error) {
          div.dataset.state = "error";
          div.textContent = "This timeline could not be drawn: " + error;
        }
      })();
    }
    return div._drawn;
  }

  const plots = Array.from(document.querySelectorAll("div.plot"));
  if ("IntersectionObserver" in window) {
    const observer = new IntersectionObserver(
      (entries) => {
        for (const entry of entries) {
          if (entry.isIntersecting) {
            observer.unobserve(entry.target);
            render(entry.target);
          }
        }
      },
      { rootMargin: "600px 0px" }
    );
    plots.forEach((div) => observer.observe(div));
  } else {
    plots.forEach(render);
  }
  window.lwaffectReport = { render: render, renderAll: () => Promise.all(plots.map(render)) };
})();

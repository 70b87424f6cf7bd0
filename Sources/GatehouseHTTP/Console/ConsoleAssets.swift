/// The console's one script and one stylesheet, served from `/console/static/` so that the content
/// security policy can forbid inline code.
enum ConsoleAssets {
    /// Keeps `[data-live]` regions current by polling their fragment URL every two seconds: a region is
    /// replaced only when its ETag changed, and left alone while someone is typing in it. Counts down
    /// `[data-expires]` times (the server has counted them already, `ConsoleClock`). Tells the server the
    /// browser's time zone (the `gatehouse_zone` cookie), in which it then writes times.
    static let script = #"""
        "use strict";
        (function () {
          try {
            var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
            var pair = "gatehouse_zone=" + encodeURIComponent(zone);
            if (zone && document.cookie.split("; ").indexOf(pair) < 0) {
              document.cookie = pair + "; path=/console; max-age=31536000; samesite=strict";
            }
          } catch (error) {}
          function refresh(region) {
            fetch(region.getAttribute("data-live"), { credentials: "same-origin", headers: { "Accept": "text/html" } })
              .then(function (response) {
                if (response.status === 401) { window.location.assign("/console/login"); return null; }
                if (!response.ok) { return null; }
                var tag = (response.headers.get("ETag") || "").replace(/"/g, "");
                if (tag && tag === region.getAttribute("data-etag")) { return null; }
                return response.text().then(function (html) { return { html: html, tag: tag }; });
              })
              .then(function (update) {
                if (update === null) { return; }
                var active = document.activeElement;
                if (active && region.contains(active) && active.value) { return; }
                region.innerHTML = update.html;
                region.setAttribute("data-etag", update.tag);
                countdowns();
              })
              .catch(function () {});
          }
          function countdowns() {
            document.querySelectorAll("[data-expires]").forEach(function (element) {
              var left = Math.max(0, Math.round((Date.parse(element.getAttribute("data-expires")) - Date.now()) / 1000));
              var minutes = Math.floor(left / 60), seconds = left % 60;
              element.textContent = left === 0 ? "ended"
                : minutes >= 60 ? Math.floor(minutes / 60) + "h " + (minutes % 60) + "m"
                : minutes + "m " + String(seconds).padStart(2, "0") + "s";
            });
          }
          document.addEventListener("DOMContentLoaded", function () {
            document.querySelectorAll("[data-live]").forEach(function (region) {
              setInterval(function () { refresh(region); }, 2000);
            });
            countdowns();
            setInterval(countdowns, 1000);
          });
        })();
        """#

    static let stylesheet = #"""
        :root { --ink: #1d2330; --muted: #5b6475; --line: #d9dde5; --accent: #1f5fbf; --deny: #b3261e; --ok: #1e7b34;
          --warn: #8a5a00; --paper: #ffffff; --ground: #f4f6f9; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: var(--ground); }
        header { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 24px; padding: 10px 24px; background: var(--ink); color: #fff; }
        header .brand { font-weight: 700; letter-spacing: .02em; }
        header nav { display: flex; flex-wrap: wrap; gap: 4px 16px; }
        header nav a { color: #cfd6e4; text-decoration: none; }
        header nav a.here { color: #fff; border-bottom: 2px solid #fff; padding-bottom: 2px; }
        header .who { margin-left: auto; display: flex; gap: 12px; align-items: center; color: #cfd6e4; }
        header .who button { background: transparent; color: #fff; border: 1px solid #cfd6e4; }
        main { max-width: 1180px; margin: 24px auto; padding: 0 24px; }
        h1 { font-size: 22px; margin: 0 0 16px; }
        h2 { font-size: 16px; margin: 24px 0 8px; }
        .card { background: var(--paper); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin-bottom: 12px; }
        .card .meta { color: var(--muted); font-size: 13px; }
        pre, code { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 13px; }
        pre { background: var(--ground); padding: 8px 10px; border-radius: 6px; white-space: pre-wrap; word-break: break-word; margin: 8px 0; }
        table { width: 100%; border-collapse: collapse; background: var(--paper); border: 1px solid var(--line); }
        th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: top; font-size: 13px; }
        th { background: #eef1f6; font-weight: 600; }
        form.inline { display: inline-flex; gap: 6px; align-items: center; margin: 4px 8px 4px 0; }
        form.filters { display: flex; flex-wrap: wrap; gap: 8px; align-items: end; margin-bottom: 12px; }
        form.filters label, form.stack label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 2px; }
        label.check { display: inline-flex; gap: 4px; align-items: center; font-size: 12px; color: var(--muted); }
        label.check input { padding: 0; }
        form.stack { display: grid; gap: 10px; max-width: 560px; }
        input, select, textarea { font: inherit; padding: 6px 8px; border: 1px solid var(--line); border-radius: 6px; background: #fff; }
        textarea { min-height: 90px; font-family: ui-monospace, Menlo, monospace; }
        button { font: inherit; padding: 6px 12px; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
        button.secondary { background: #fff; color: var(--accent); }
        button.danger { background: var(--deny); border-color: var(--deny); }
        .flash { padding: 10px 14px; border-radius: 6px; margin-bottom: 16px; background: #e8f1fd; border: 1px solid #b9d1f5; }
        .flash.error { background: #fdecea; border-color: #f3b8b2; color: var(--deny); }
        .badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; background: #eef1f6; color: var(--ink); }
        .badge.allow, .badge.ok { background: #e3f4e8; color: var(--ok); }
        .badge.deny, .badge.broken { background: #fdecea; color: var(--deny); }
        .badge.step_up, .badge.approve, .badge.alert, .badge.pending { background: #fff4dc; color: var(--warn); }
        .empty { color: var(--muted); font-style: italic; }
        #audit-table td.time { white-space: nowrap; }
        #audit-table tr.deny td:first-child { box-shadow: inset 3px 0 var(--deny); }
        #audit-table tr.ok td:first-child { box-shadow: inset 3px 0 var(--ok); }
        #audit-table tr.pending td:first-child { box-shadow: inset 3px 0 var(--warn); }
        #audit-table td.detail { min-width: 16em; }
        #audit-table details summary { cursor: pointer; font-family: ui-monospace, Menlo, monospace; word-break: break-word; }
        #audit-table dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 10px; margin: 6px 0; }
        #audit-table dt { color: var(--muted); }
        #audit-table dd { margin: 0; font-family: ui-monospace, Menlo, monospace; word-break: break-word; }
        .chain { margin-bottom: 12px; }
        .login { max-width: 380px; margin: 80px auto; }
        .login h1 { text-align: center; }
        .muted { color: var(--muted); }
        .pager { margin-top: 10px; }
        /* Narrow screens (from 360 px): the header wraps, tables scroll inside their box, not the page. */
        .scroll { overflow-x: auto; }
        @media (max-width: 700px) {
          header { padding: 10px 12px; gap: 6px 14px; }
          header .who { margin-left: 0; width: 100%; justify-content: space-between; }
          main { padding: 0 12px; margin: 14px auto; }
          table { display: block; overflow-x: auto; }
          form.inline { flex-wrap: wrap; }
          input, select, textarea { max-width: 100%; }
        }
        """#
}

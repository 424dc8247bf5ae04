public import Foundation
import HTTPTypes
public import Hummingbird
import NIOCore

/// Server-rendered HTML: the layout every page shares, escaping, tables and inline SVG charts.
/// Everything that comes from data (headers, payloads, labels, filters) goes through `escape`.
public enum Page {
    /// Text made safe for element content and quoted attribute values. Scalar by scalar, never
    /// `Character` by `Character`: `"` followed by a combining mark, or `<` after U+0600, is one
    /// grapheme cluster that compares unequal to `"` or `<`, and a browser parses code points.
    public static func escape(_ text: String) -> String {
        var result = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": result.append(contentsOf: "&amp;".unicodeScalars)
            case "<": result.append(contentsOf: "&lt;".unicodeScalars)
            case ">": result.append(contentsOf: "&gt;".unicodeScalars)
            case "\"": result.append(contentsOf: "&quot;".unicodeScalars)
            case "'": result.append(contentsOf: "&#39;".unicodeScalars)
            default: result.append(scalar)
            }
        }
        return String(result)
    }

    /// A query-string value.
    public static func urlEncode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~@")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    /// A query string from pairs whose value is not empty.
    public static func query(_ pairs: [(String, String?)]) -> String {
        let kept = pairs.compactMap { name, value in
            value.flatMap { $0.isEmpty ? nil : "\(name)=\(Self.urlEncode($0))" }
        }
        return kept.isEmpty ? "" : "?" + kept.joined(separator: "&")
    }

    /// The console's pages, in the navigation's order.
    public enum Section: String, CaseIterable, Sendable {
        case flow = "Flow"
        case deadLetters = "Dead letters"
        case replay = "Replay"

        var path: String {
            switch self {
            case .flow: "/flow"
            case .deadLetters: "/dead-letters"
            case .replay: "/replay"
            }
        }
    }

    /// A full page: navigation, who is signed in, and `main` (refreshed in place every
    /// `refresh` seconds from `?fragment=1` when set).
    public static func layout(
        _ section: Section, title: String, operatorName: String, refresh: Int? = nil, main: String
    ) -> String {
        let navigation = Section.allCases.map { item in
            #"<a href="\#(item.path)"\#(item == section ? #" class="current""# : "")>\#(item.rawValue)</a>"#
        }.joined(separator: " ")
        let refreshAttribute = refresh.map { #" data-refresh="\#($0)""# } ?? ""
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(Self.escape(title)) · cancel-worker console</title>
            <link rel="stylesheet" href="/console.css"><script src="/console.js" defer></script>
            </head><body>
            <header><strong>cancel-worker console</strong> <nav>\(navigation)</nav>
            <span class="who">signed in as <span id="operator">\(Self.escape(operatorName))</span></span></header>
            <main id="main"\(refreshAttribute)>
            \(main)
            </main></body></html>
            """
    }

    /// A page without navigation (the 401 answer).
    public static func bare(title: String, body: String) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>\(Self.escape(title))</title></head>
        <body>\(body)</body></html>
        """
    }

    /// An HTML answer that no cache keeps and no other site frames; scripts and styles only
    /// from the console itself.
    public static func response(status: HTTPResponse.Status = .ok, html: String) -> Response {
        Response(
            status: status,
            headers: [
                .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                .contentSecurityPolicy:
                    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'",
                .xContentTypeOptions: "nosniff", Self.referrerPolicy: "no-referrer",
            ],
            body: ResponseBody(byteBuffer: ByteBuffer(string: html))
        )
    }

    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!

    /// An error page inside the layout.
    public static func problem(
        _ status: HTTPResponse.Status, _ section: Section, operatorName: String, message: String
    ) -> Response {
        Self.response(
            status: status,
            html: Self.layout(
                section, title: "\(status.code)", operatorName: operatorName,
                main:
                    #"<h1>\#(status.code) \#(Self.escape(status.reasonPhrase))</h1><p class="problem">\#(Self.escape(message))</p>"#
            ))
    }

    /// A table; `cells` are HTML already (escape data before passing it).
    public static func table(
        id: String? = nil, columns: [String], rows: [[String]], empty: String = "none"
    )
        -> String
    {
        let head = columns.map { "<th>\(Self.escape($0))</th>" }.joined()
        let body =
            rows.isEmpty
            ? #"<tr><td colspan="\#(columns.count)" class="empty">\#(Self.escape(empty))</td></tr>"#
            : rows.map { "<tr>" + $0.map { "<td>\($0)</td>" }.joined() + "</tr>" }.joined(separator: "\n")
        let idAttribute = id.map { #" id="\#($0)""# } ?? ""
        return "<table\(idAttribute)><thead><tr>\(head)</tr></thead><tbody>\n\(body)\n</tbody></table>"
    }

    /// `<select>` with `options` (value, label) and `selected` chosen; the first option is "any".
    public static func select(name: String, options: [(String, String)], selected: String?) -> String {
        let items = ([("", "any")] + options).map { value, label in
            #"<option value="\#(Self.escape(value))"\#(value == (selected ?? "") ? " selected" : "")>\#(Self.escape(label))</option>"#
        }.joined()
        return #"<select name="\#(name)" id="\#(name)">\#(items)</select>"#
    }

    /// A line chart of `series` over the last `span` seconds, drawn as inline SVG (no script,
    /// no library): one polyline per series, the largest value on the axis.
    public static func chart(
        id: String, title: String, unit: String, series: [(name: String, points: [(at: Date, value: Double)])],
        now: Date, span: TimeInterval = 900
    ) -> String {
        let width = 600.0
        let height = 140.0
        let top = 18.0
        let maximum = max(series.flatMap { $0.points.map(\.value) }.max() ?? 0, 1e-9)
        let colors = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"]
        var lines: [String] = []
        var legend: [String] = []
        for (index, item) in series.enumerated() {
            let color = colors[index % colors.count]
            let points = item.points.filter { now.timeIntervalSince($0.at) <= span }.map { point -> String in
                let x = width * (1 - now.timeIntervalSince(point.at) / span)
                let y = top + (height - top) * (1 - point.value / maximum)
                return String(format: "%.1f,%.1f", x, y)
            }
            if points.count > 1 {
                lines.append(
                    #"<polyline fill="none" stroke="\#(color)" stroke-width="1.5" points="\#(points.joined(separator: " "))"/>"#
                )
            } else if let only = points.first {
                let xy = only.split(separator: ",")
                lines.append(#"<circle cx="\#(xy[0])" cy="\#(xy[1])" r="2" fill="\#(color)"/>"#)
            }
            legend.append(
                #"<tspan fill="\#(color)">■ \#(Self.escape(item.name))</tspan> "#)
        }
        return """
            <figure class="chart"><svg id="\(id)" viewBox="0 0 \(Int(width)) \(Int(height) + 14)" role="img" aria-label="\(Self.escape(title))">
            <title>\(Self.escape(title))</title>
            <rect x="0" y="\(Int(top))" width="\(Int(width))" height="\(Int(height - top))" fill="#f8fafc" stroke="#cbd5e1"/>
            <text x="4" y="12" font-size="11">\(Self.escape(title)) · max \(Self.escape(Self.number(maximum))) \(Self.escape(unit))</text>
            \(lines.joined(separator: "\n"))
            <text x="4" y="\(Int(height) + 12)" font-size="10">−\(Self.escape(Self.ago(span)))</text><text x="\(Int(width) - 30)" y="\(Int(height) + 12)" font-size="10">now</text>
            <text x="120" y="\(Int(height) + 12)" font-size="10">\(legend.joined())</text>
            </svg></figure>
            """
    }

    /// `seconds` as the chart's axis says it: `90 s`, `15 min`.
    static func ago(_ seconds: TimeInterval) -> String {
        seconds < 120 ? "\(Int(seconds)) s" : "\(Int(seconds / 60)) min"
    }

    /// A figure for a table cell: integers as such, small values with 2–3 significant digits.
    public static func number(_ value: Double) -> String {
        if value.isNaN || value.isInfinite { return "–" }
        if value == value.rounded() && abs(value) < 1e12 { return String(Int64(value)) }
        if abs(value) >= 100 { return String(format: "%.0f", value) }
        if abs(value) >= 1 { return String(format: "%.1f", value) }
        return String(format: "%.3f", value)
    }

    /// A duration in seconds as milliseconds.
    public static func milliseconds(_ seconds: Double?) -> String {
        guard let seconds else { return "–" }
        return String(format: seconds < 0.1 ? "%.1f ms" : "%.0f ms", seconds * 1000)
    }

    /// The console's stylesheet, served at `/console.css`.
    public static let stylesheet = """
        body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#0f172a}
        header{background:#0f172a;color:#f8fafc;padding:8px 16px;display:flex;gap:16px;align-items:center}
        header a{color:#cbd5e1;margin-right:12px;text-decoration:none}header a.current{color:#fff;font-weight:600}
        header .who{margin-left:auto;color:#94a3b8}main{padding:12px 16px;max-width:1200px}
        h1{font-size:20px;margin:8px 0}h2{font-size:16px;margin:16px 0 6px}
        table{border-collapse:collapse;margin:4px 0 12px}th,td{border:1px solid #e2e8f0;padding:3px 8px;text-align:left;vertical-align:top}
        th{background:#f1f5f9}td.empty{color:#64748b}.num{text-align:right}
        .figures{display:flex;gap:12px;flex-wrap:wrap}.figure{border:1px solid #e2e8f0;padding:6px 12px;min-width:120px}
        .figure b{display:block;font-size:22px}.down{color:#b91c1c}.ok{color:#15803d}.problem{color:#b91c1c}
        pre{background:#f8fafc;border:1px solid #e2e8f0;padding:8px;white-space:pre-wrap;word-break:break-all}
        form.filters{display:flex;gap:10px;align-items:end;flex-wrap:wrap;margin:6px 0}form label{display:flex;flex-direction:column;font-size:12px}
        .charts{display:flex;flex-wrap:wrap;gap:12px}figure.chart{margin:0}figure.chart svg{width:600px;max-width:100%}
        button{padding:4px 12px}.danger{background:#b91c1c;color:#fff;border:0}
        """

    /// The console's only script, served at `/console.js`: refreshes `main` in place from
    /// `?fragment=1` every `data-refresh` seconds (the page's charts and tables are drawn on
    /// the server), and stops once the fragment says it is final.
    public static let script = """
        (function () {
          var main = document.getElementById('main');
          if (!main || !main.dataset.refresh) return;
          var seconds = parseInt(main.dataset.refresh, 10) || 5;
          function tick() {
            // The origin without any user:password a sign-in URL carried (fetch refuses those).
            var url = location.origin + location.pathname + (location.search ? location.search + '&' : '?') + 'fragment=1';
            fetch(url, {credentials: 'same-origin', cache: 'no-store'}).then(function (r) {
              if (!r.ok) throw new Error('HTTP ' + r.status);
              return r.text();
            }).then(function (html) {
              main.innerHTML = html;
              if (!main.querySelector('[data-final]')) setTimeout(tick, seconds * 1000);
            }).catch(function () { setTimeout(tick, seconds * 1000); });
          }
          if (!main.querySelector('[data-final]')) setTimeout(tick, seconds * 1000);
        })();
        """
}

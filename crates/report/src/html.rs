//! One self-contained HTML page: every figure inlined, nothing fetched.

use std::fmt::Write as _;

use base64::Engine as _;
use html_escape::encode_text;

/// A figure of the page.
#[derive(Debug, Clone, PartialEq)]
pub enum Figure {
    /// An SVG document, inlined as markup.
    Svg {
        /// The caption.
        title: String,
        /// The document.
        svg: String,
    },
    /// A PNG image, inlined as a data URL.
    Png {
        /// The caption.
        title: String,
        /// The PNG bytes.
        png: Vec<u8>,
    },
}

/// A table of the page: a caption, column names and rows of text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// The heading above it.
    pub title: String,
    /// The column names.
    pub header: Vec<String>,
    /// The rows, each as many cells as `header` names.
    pub rows: Vec<Vec<String>>,
}

/// What the page shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    /// The page's title (the run's name).
    pub title: String,
    /// Headline facts (test accuracy, best epoch, ...), in order.
    pub facts: Vec<(String, String)>,
    /// The run's settings, in order.
    pub settings: Vec<(String, String)>,
    /// The figures, in order.
    pub figures: Vec<Figure>,
    /// Per class: its name, images classified correctly, images.
    pub per_class: Vec<(String, u64, u64)>,
    /// Remarks (what could not be drawn, and why).
    pub notes: Vec<String>,
    /// Tables, after the facts and before the figures (a sweep's groups and runs).
    pub tables: Vec<Table>,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1250px;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}figure{margin:1.5em 0}img,svg{max-width:100%;height:auto}\
.notes{color:#8a4b00}";

fn table(rows: &[(String, String)]) -> String {
    let mut html = String::from("<table>");
    for (key, value) in rows {
        let _ = write!(html, "<tr><th>{}</th><td>{}</td></tr>", encode_text(key), encode_text(value));
    }
    html.push_str("</table>");
    html
}

fn grid(table: &Table) -> String {
    let mut html = format!("<h2>{}</h2><table><tr>", encode_text(&table.title));
    for name in &table.header {
        let _ = write!(html, "<th>{}</th>", encode_text(name));
    }
    html.push_str("</tr>");
    for row in &table.rows {
        html.push_str("<tr>");
        for cell in row {
            let _ = write!(html, "<td>{}</td>", encode_text(cell));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    html
}

/// The page as one HTML document with every figure inlined.
///
/// ```
/// use report::{Figure, Page, Table, index_html};
///
/// let page = Page {
///     title: "run <1>".into(),
///     facts: vec![("test accuracy".into(), "0.9957".into())],
///     tables: vec![Table { title: "runs".into(), header: vec!["seed".into()], rows: vec![vec!["<0>".into()]] }],
///     figures: vec![Figure::Png { title: "a dot".into(), png: vec![0x89, b'P', b'N', b'G'] }],
///     ..Page::default()
/// };
/// let html = index_html(&page);
/// assert!(html.contains("run &lt;1&gt;") && html.contains("data:image/png;base64,iVBORw"));
/// assert!(html.contains("<th>seed</th>") && html.contains("<td>&lt;0&gt;</td>"));
/// ```
pub fn index_html(page: &Page) -> String {
    let title = encode_text(&page.title);
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{title}</title>\
         <style>{STYLE}</style></head><body><h1>{title}</h1>"
    );
    html.push_str(&table(&page.facts));
    if !page.notes.is_empty() {
        html.push_str("<ul class=\"notes\">");
        for note in &page.notes {
            let _ = write!(html, "<li>{}</li>", encode_text(note));
        }
        html.push_str("</ul>");
    }
    for table in &page.tables {
        html.push_str(&grid(table));
    }
    for figure in &page.figures {
        match figure {
            Figure::Svg { title, svg } => {
                let body = svg.find("<svg").map_or(svg.as_str(), |start| &svg[start..]);
                let _ = write!(html, "<figure>{body}<figcaption>{}</figcaption></figure>", encode_text(title));
            }
            Figure::Png { title, png } => {
                let data = base64::engine::general_purpose::STANDARD.encode(png);
                let title = encode_text(title);
                let _ = write!(
                    html,
                    "<figure><img alt=\"{title}\" src=\"data:image/png;base64,{data}\"><figcaption>{title}</figcaption></figure>"
                );
            }
        }
    }
    if !page.per_class.is_empty() {
        html.push_str("<h2>Accuracy per class (test set)</h2><table><tr><th>class</th><th>correct</th><th>images</th><th>accuracy</th></tr>");
        for (name, correct, total) in &page.per_class {
            let accuracy = if *total == 0 { "-".to_owned() } else { format!("{:.4}", *correct as f64 / *total as f64) };
            let _ = write!(
                html,
                "<tr><td>{}</td><td class=\"n\">{correct}</td><td class=\"n\">{total}</td><td class=\"n\">{accuracy}</td></tr>",
                encode_text(name)
            );
        }
        html.push_str("</table>");
    }
    html.push_str("<h2>Settings</h2>");
    html.push_str(&table(&page.settings));
    html.push_str("</body></html>\n");
    html
}

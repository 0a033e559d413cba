//! The simulator's hosted pages (a provider's hosted verification, opened in a browser): plain
//! HTML with inline style and no external assets, and the small helpers their forms need.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

/// Escapes text for HTML element content and double-quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A complete page: `title` (text) and `body` (HTML, already escaped where needed). Never
/// cached: a hosted page carries a session.
pub(crate) fn html(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    let title = escape(title);
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title}</title>\
             <style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;\
             padding:0 1rem;line-height:1.5}}button{{font-size:1rem;padding:.5rem 1.25rem}}\
             .sim{{color:#666;font-size:.875rem}}</style></head>\
             <body><h1>{title}</h1>\n{body}\n\
             <p class=\"sim\">Served by the provider simulator: no real verification happens \
             here.</p></body></html>\n"
        ))
}

/// Whether a request was a browser's form post (`application/x-www-form-urlencoded`), which
/// gets a page back instead of JSON.
pub(crate) fn is_form_post(req: &HttpRequest) -> bool {
    req.headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("plain-0123"), "plain-0123");
    }
}

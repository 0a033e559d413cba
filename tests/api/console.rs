//! `/console`: the embedded ops console's files, their compression, caching and CSP.

use reqwest::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use reqwest::StatusCode;

use crate::helpers::{assert_problem, gunzip, spawn_app};
use onboarding_gateway::api::console::{ASSETS, CONTENT_SECURITY_POLICY};

#[tokio::test]
async fn the_console_page_and_its_files_are_served_with_a_strict_csp() {
    let app = spawn_app().await;
    let redirect = app.client.get(app.url("/console")).send().await.unwrap();
    assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(redirect.headers()["location"], "/console/");

    let page = app.client.get(app.url("/console/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(
        page.headers()["content-security-policy"],
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"<script type="module" src="app.js">"#),
        "{html}"
    );
    // Nothing inline for the CSP to refuse, and nothing from elsewhere: works offline.
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "{html}"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );

    for (path, content_type) in [
        ("/console/index.html", "text/html; charset=utf-8"),
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/app.css", "text/css; charset=utf-8"),
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()[CONTENT_TYPE], content_type, "{path}");
        assert_eq!(
            response.headers()["content-security-policy"],
            CONTENT_SECURITY_POLICY
        );
        assert!(response.headers().get(CONTENT_ENCODING).is_none(), "{path}");
        let name = path.trim_start_matches("/console/");
        let asset = ASSETS.iter().find(|a| a.name == name).unwrap();
        assert_eq!(response.bytes().await.unwrap(), asset.body, "{path}");
    }
}

#[tokio::test]
async fn a_client_that_takes_gzip_gets_the_precompressed_file() {
    let app = spawn_app().await;
    for asset in ASSETS {
        let path = format!("/console/{}", asset.name);
        let response = app
            .client
            .get(app.url(&path))
            .header(ACCEPT_ENCODING, "br;q=1.0, gzip;q=0.8")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()[CONTENT_ENCODING], "gzip", "{path}");
        assert_eq!(response.headers()[VARY], "accept-encoding", "{path}");
        let body = response.bytes().await.unwrap();
        assert_eq!(body, asset.gzip, "the embedded gzip, not compressed again");
        assert_eq!(gunzip(&body), asset.body, "{path} unpacks to the file");
        assert!(body.len() < asset.body.len(), "{path} is smaller packed");
    }
    let refused = app
        .client
        .get(app.url("/console/app.js"))
        .header(ACCEPT_ENCODING, "gzip;q=0, identity")
        .send()
        .await
        .unwrap();
    assert!(refused.headers().get(CONTENT_ENCODING).is_none());
    assert_eq!(refused.bytes().await.unwrap(), ASSETS[1].body);
}

#[tokio::test]
async fn an_unchanged_file_is_revalidated_with_its_etag() {
    let app = spawn_app().await;
    let first = app
        .client
        .get(app.url("/console/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.headers()[CACHE_CONTROL], "no-cache");
    let plain = first.headers()[ETAG].to_str().unwrap().to_owned();
    assert!(plain.starts_with('"') && plain.ends_with('"'), "{plain}");
    let gzip = app
        .client
        .get(app.url("/console/app.js"))
        .header(ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    let packed = gzip.headers()[ETAG].to_str().unwrap().to_owned();
    assert_ne!(plain, packed, "each representation has its own tag");

    for (etag, encoding) in [(&plain, "identity"), (&packed, "gzip")] {
        let again = app
            .client
            .get(app.url("/console/app.js"))
            .header(ACCEPT_ENCODING, encoding)
            .header(IF_NONE_MATCH, etag.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{encoding}");
        assert_eq!(again.headers()[ETAG], etag.as_str());
        assert!(again.bytes().await.unwrap().is_empty());
    }
    let other = app
        .client
        .get(app.url("/console/app.js"))
        .header(IF_NONE_MATCH, "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    let html = app.client.get(app.url("/console/")).send().await.unwrap();
    assert_ne!(html.headers()[ETAG].to_str().unwrap(), plain, "per file");
}

#[tokio::test]
async fn unknown_console_files_are_404_and_other_methods_405() {
    let app = spawn_app().await;
    for path in [
        "/console/nope.js",
        "/console/app.js.gz",
        "/console/../Cargo.toml",
        "/console/%2e%2e/Cargo.toml",
        "/console/dist/app.js",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_problem(response, 404, "not_found").await;
    }
    let post = app
        .client
        .post(app.url("/console/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.headers()["allow"], "GET");
}

#[tokio::test]
async fn the_console_needs_no_key_and_gives_no_access_to_the_api() {
    let app = spawn_app().await;
    // The files are public (like /docs); the API behind them still wants a key.
    let page = app.client.get(app.url("/console/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers().get("set-cookie").is_none(), "no cookies");
    let users = app
        .client
        .get(app.url("/v1/users"))
        .header("referer", app.url("/console/"))
        .send()
        .await
        .unwrap();
    assert_problem(users, 401, "unauthorized").await;
}

//! The OpenAPI document: served as checked in, and in step with the routes.

use std::collections::BTreeSet;

use crate::helpers::*;

fn checked_in() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    std::fs::read_to_string(path).expect("docs/openapi.json")
}

async fn the_served_document_is_the_checked_in_one(db: Db) {
    let app = spawn_app(db).await;
    let served = app.get("/openapi.json").await;
    assert_eq!(served.status(), 200, "no token needed");
    assert_eq!(served.headers()["content-type"], "application/json");
    assert_eq!(served.text().await.expect("body"), checked_in());
    app.stop().await;
}

/// Every documented path answers its documented methods, and its `Allow` header
/// (less HEAD, which every GET route answers) lists exactly those methods.
async fn the_document_and_the_routes_agree(db: Db) {
    let app = spawn_app(db).await;
    let doc: serde_json::Value = serde_json::from_str(&checked_in()).expect("JSON");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 6, "{:?}", paths.keys());
    for (template, operations) in paths {
        let path = template.replace("{orderId}", "0192f1c4-0000-7000-8000-000000000000");
        let documented: BTreeSet<String> = operations
            .as_object()
            .expect("operations")
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        for method in &documented {
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            let answer = app
                .client
                .request(method.clone(), app.url(&path))
                .bearer_auth(ACME)
                .send()
                .await
                .expect("sent");
            assert_ne!(answer.status(), 405, "{method} {path} is routed");
            if answer.status() == 404 {
                let (_, code, body) = problem(answer).await;
                assert_eq!(code, "not_found", "{method} {path}");
                assert!(
                    !body["detail"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("route"),
                    "{method} {path} is routed"
                );
            }
        }
        let refused = app
            .client
            .patch(app.url(&path))
            .bearer_auth(ACME)
            .send()
            .await
            .expect("sent");
        assert_eq!(refused.status(), 405, "PATCH {path}");
        let allowed: BTreeSet<String> = refused.headers()["allow"]
            .to_str()
            .expect("allow")
            .split(',')
            .map(|m| m.trim().to_uppercase())
            .filter(|m| m != "HEAD")
            .collect();
        assert_eq!(allowed, documented, "{path}: routes and document differ");
    }
    app.stop().await;
}

on_each_backend!(
    the_served_document_is_the_checked_in_one,
    the_document_and_the_routes_agree,
);

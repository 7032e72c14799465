//! Tenants are isolated: keys and orders are scoped to the token's tenant.

use crate::helpers::*;

async fn the_same_key_in_two_tenants_places_two_orders(db: Db) {
    let app = spawn_app(db).await;
    let a = app.post_as(ACME, "shared-key", ORDER).await;
    let b = app.post_as(GLOBEX, "shared-key", ORDER).await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (201, 201));
    assert!(
        b.headers().get("idempotent-replay").is_none(),
        "no cross-tenant replay"
    );
    let (a, b) = (a.bytes().await.expect("a"), b.bytes().await.expect("b"));
    assert_ne!(order_id(&a), order_id(&b));
    // Another payload in the other tenant is not a reused key either.
    let other = r#"{"symbol":"MSFT","side":"sell","quantity":1}"#;
    assert_eq!(app.post_as(GLOBEX, "acme-only", other).await.status(), 201);
    assert_eq!(app.post_as(ACME, "acme-only", ORDER).await.status(), 201);
    app.stop().await;
}

async fn one_tenant_cannot_read_another_tenants_orders(db: Db) {
    let app = spawn_app(db).await;
    let created = app.post_as(ACME, "secret", ORDER).await;
    let location = created.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    for path in [location.as_str(), "/orders?idempotencyKey=secret"] {
        let (status, _, _) = problem(app.get_as(GLOBEX, path).await).await;
        assert_eq!(status, 404, "{path}");
    }
    app.stop().await;
}

on_each_target!(
    the_same_key_in_two_tenants_places_two_orders,
    one_tenant_cannot_read_another_tenants_orders,
);

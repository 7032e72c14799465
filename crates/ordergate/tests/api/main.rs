//! ordergate's integration tests: one binary, a real server on a random port and a
//! fresh database for every test.

mod check_order;
mod helpers;
mod lookups;
mod ops;
mod post_orders;
mod race;
mod store_contract;
mod tenants;
mod unavailable;

//! ordergate's integration tests: one binary, a real server on a random port and a
//! fresh database for every test.

#[macro_use]
mod backends;
#[macro_use]
mod helpers;
mod at_the_edge;
mod bench_command;
mod check_order;
mod command_line;
mod connections;
mod crash;
mod delivery;
mod durability;
mod edge_runner;
mod failover;
mod fix_acceptor;
mod fix_delivery;
mod fix_store_contract;
mod full_disk;
mod high_availability;
mod lifecycle;
mod lookups;
mod migration;
mod multi_process;
mod openapi;
mod operations_guide;
mod order_terms;
mod outbox_contract;
mod own_postgres;
mod patroni;
mod pg;
mod pg_tls;
mod post_orders;
mod pretrade;
mod probes_and_metrics;
mod process;
mod race;
mod records_contract;
mod retention;
mod tenants;
mod unavailable;

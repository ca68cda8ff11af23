//! One integration-test binary (one link step, one shared database server per run).

mod adcs;
mod architecture;
mod authorization;
mod aws;
mod ca;
mod cli;
mod crash;
mod discord;
mod domain;
mod downloads;
mod escalation;
mod event_store;
mod expiry;
mod fixtures;
mod health;
mod helpers;
mod jobs;
mod projections;
mod renewal;
mod restart;
mod retention;
mod saga;
mod schema;
mod slack;
mod teams;
mod views;

//! Chat surfaces over one platform-neutral core: [`command`] parses `/cert …` once for every
//! platform, [`service`] runs it against the application layer, and [`reply`] describes the
//! answer, which each platform renders its own way; [`outbound`] carries what happens to the
//! people involved (asks, decisions, reminders) through every configured platform. Nothing outside a platform's module knows
//! that platform exists.

pub mod admission;
pub mod command;
pub mod decide;
pub mod discord;
pub mod identities;
pub mod outbound;
#[cfg(test)]
mod render_tests;
pub mod reply;
pub mod service;
pub mod short_form;
pub mod slack;
pub mod suggestions;
pub mod teams;

//! What every outbound port shares: its methods return a boxed future, so that an adapter
//! (a CA, a store, a mailer, a chat platform) can live behind `Arc<dyn Trait>` and be
//! chosen from the configuration once.

use std::future::Future;
use std::pin::Pin;

/// A boxed future of an outbound port's method.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

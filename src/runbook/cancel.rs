//! Cooperative shutdown: a flag the executor and long-running steps watch.

use std::sync::Arc;

use tokio::sync::watch;

/// A cancellation signal shared by clones. Once cancelled it stays cancelled.
#[derive(Clone, Debug)]
pub struct Cancel {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel::new()
    }
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel {
            tx: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Asks everyone holding a clone to stop at their next safe point.
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_cancelled(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once `cancel` has been called (at once if it already was).
    pub async fn cancelled(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives as long as `self`, so `wait_for` cannot see it closed.
        let _ = rx.wait_for(|c| *c).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_cancellation() {
        let a = Cancel::new();
        let b = a.clone();
        assert!(!b.is_cancelled());
        let waiter = tokio::spawn(async move { b.cancelled().await });
        a.cancel();
        waiter.await.expect("waiter finished");
        assert!(a.is_cancelled());
        // Already cancelled: resolves at once.
        a.cancelled().await;
    }
}

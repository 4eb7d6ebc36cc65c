//! The sampler: once per [`SAMPLE_INTERVAL`] it reads every source, feeds the sample to the
//! [`DashboardCore`] and publishes the result (snapshot JSON serialised once, the history,
//! the raw sample for `/metrics`) on a `watch` channel. However many pages are open, the
//! cluster is polled once per interval; a tick is skipped while the previous one is still
//! gathering, so a slow source never stacks up requests.

use super::core::{DashboardCore, HistoryPoint, Sample};
use super::sources::DashboardSources;
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// One sample per second: the resolution of the charts and of the rates.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Chart points kept: ten minutes at one per second (about 100 bytes each).
pub const HISTORY_POINTS: usize = 600;

/// What the sampler last produced.
#[derive(Debug, Default)]
pub struct Published {
    /// The snapshot as JSON (`None` until the first tick).
    pub snapshot_json: Option<Arc<str>>,
    /// The chart history, oldest first.
    pub history: Arc<Vec<HistoryPoint>>,
    /// The raw sample behind the snapshot.
    pub sample: Option<Arc<Sample>>,
}

/// Receiving end: what the HTTP handlers hold.
pub type Feed = watch::Receiver<Arc<Published>>;

/// The sampling actor (runs on the arbiter that starts it).
pub struct Sampler {
    core: DashboardCore,
    sources: DashboardSources,
    publish: watch::Sender<Arc<Published>>,
    every: Duration,
    gathering: bool,
}

impl Sampler {
    /// A sampler for the node named `node`, and the feed its results go to.
    pub fn new(node: String, sources: DashboardSources, every: Duration) -> (Sampler, Feed) {
        let (publish, feed) = watch::channel(Arc::new(Published::default()));
        let core = DashboardCore::new(node, crate::metrics::unix_ms(), HISTORY_POINTS);
        let sampler = Sampler {
            core,
            sources,
            publish,
            every,
            gathering: false,
        };
        (sampler, feed)
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.gathering {
            return;
        }
        self.gathering = true;
        let gather = self.sources.gather();
        ctx.spawn(gather.into_actor(self).map(|sample, act, _| {
            act.gathering = false;
            act.publish(sample);
        }));
    }

    fn publish(&mut self, sample: Sample) {
        let snapshot = self.core.observe(sample.clone());
        let json = match serde_json::to_string(&snapshot) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(cause = %e, "cannot serialise the dashboard snapshot");
                return;
            }
        };
        self.publish.send_replace(Arc::new(Published {
            snapshot_json: Some(Arc::from(json)),
            history: Arc::new(self.core.history()),
            sample: Some(Arc::new(sample)),
        }));
    }
}

impl Actor for Sampler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.tick(ctx);
        ctx.run_interval(self.every, |act, ctx| act.tick(ctx));
    }
}

/// Stop the sampler.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopSampler;

impl Handler<StopSampler> for Sampler {
    type Result = ();

    fn handle(&mut self, _: StopSampler, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

//! Prometheus metrics, rendered as text: requests by method and code, creates and replaces,
//! push outcomes, and request latency.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notif_core::platform::Platform;
use notif_delivery::{AttemptOutcome, DispatchStats};

/// The store's figures at scrape time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Figures {
    /// Delivery jobs queued, if they could be counted.
    pub(crate) pending_jobs: Option<u64>,
    /// Writes so far and their total latency.
    pub(crate) writes: (u64, Duration),
    /// Rate-limit buckets held.
    pub(crate) rate_limit_buckets: usize,
}

/// The server's counters.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// This node's name: the `node` label of every series.
    node: String,
    requests: Mutex<BTreeMap<(String, String), RequestStats>>,
    creates: AtomicU64,
    replaces: AtomicU64,
    dispatch: Mutex<Option<Arc<DispatchStats>>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct RequestStats {
    count: u64,
    seconds: f64,
}

impl Metrics {
    /// Counts one finished request.
    pub(crate) fn request(&self, method: &str, code: &str, elapsed: Duration) {
        let mut requests = self
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let stats = requests
            .entry((method.to_owned(), code.to_owned()))
            .or_default();
        stats.count += 1;
        stats.seconds += elapsed.as_secs_f64();
    }

    /// Counts a create (or a replace).
    pub(crate) fn created(&self, replaced: bool) {
        let counter = if replaced {
            &self.replaces
        } else {
            &self.creates
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the attached dispatcher runs (`None` before one is attached).
    pub(crate) fn dispatcher_running(&self) -> Option<bool> {
        self.dispatch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            .map(|stats| stats.running())
    }

    /// Reports the dispatcher's counters too.
    pub(crate) fn attach_dispatcher(&self, stats: Arc<DispatchStats>) {
        *self
            .dispatch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(stats);
    }

    /// No figures yet, for `node`.
    pub(crate) fn new(node: String) -> Self {
        Self {
            node,
            requests: Mutex::default(),
            creates: AtomicU64::default(),
            replaces: AtomicU64::default(),
            dispatch: Mutex::default(),
        }
    }

    /// This node's name.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// The Prometheus text exposition, every series labelled with this node.
    pub(crate) fn render(&self, store: &Figures) -> String {
        label_every_series(&self.series(store), &self.node)
    }

    fn series(&self, store: &Figures) -> String {
        let mut text = String::new();
        if let Some(pending) = store.pending_jobs {
            let _ = write!(
                text,
                "# HELP notif_queue_depth Delivery jobs queued.\n# TYPE notif_queue_depth gauge\nnotif_queue_depth {pending}\n"
            );
        }
        let (writes, spent) = store.writes;
        let _ = write!(
            text,
            "# HELP notif_store_write_seconds Store write latency, queueing and flush included.\n\
             # TYPE notif_store_write_seconds summary\n\
             notif_store_write_seconds_sum {}\nnotif_store_write_seconds_count {writes}\n",
            spent.as_secs_f64()
        );
        let _ = write!(
            text,
            "# HELP notif_rate_limit_buckets Rate-limit buckets held (bounded).\n# TYPE notif_rate_limit_buckets gauge\nnotif_rate_limit_buckets {}\n",
            store.rate_limit_buckets
        );
        text.push_str("# HELP notif_requests_total Requests by method and result code.\n");
        text.push_str("# TYPE notif_requests_total counter\n");
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        for ((method, code), stats) in &requests {
            let _ = writeln!(
                text,
                "notif_requests_total{{method=\"{method}\",code=\"{code}\"}} {}",
                stats.count
            );
        }
        text.push_str("# HELP notif_request_duration_seconds Time spent serving requests.\n");
        text.push_str("# TYPE notif_request_duration_seconds summary\n");
        let mut by_method: BTreeMap<&str, RequestStats> = BTreeMap::new();
        for ((method, _), stats) in &requests {
            let total = by_method.entry(method).or_default();
            total.count += stats.count;
            total.seconds += stats.seconds;
        }
        for (method, stats) in by_method {
            let _ = writeln!(
                text,
                "notif_request_duration_seconds_sum{{method=\"{method}\"}} {}",
                stats.seconds
            );
            let _ = writeln!(
                text,
                "notif_request_duration_seconds_count{{method=\"{method}\"}} {}",
                stats.count
            );
        }
        let counter = |text: &mut String, name: &str, help: &str, value: u64| {
            let _ = write!(
                text,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            );
        };
        counter(
            &mut text,
            "notif_notifications_created_total",
            "Notifications created.",
            self.creates.load(Ordering::Relaxed),
        );
        counter(
            &mut text,
            "notif_notifications_replaced_total",
            "Notifications replaced.",
            self.replaces.load(Ordering::Relaxed),
        );
        if let Some(stats) = self
            .dispatch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
        {
            text.push_str(
                "# HELP notif_pushes_total Push attempts by platform and outcome.\n# TYPE notif_pushes_total counter\n",
            );
            for platform in Platform::ALL {
                for outcome in AttemptOutcome::ALL {
                    let _ = writeln!(
                        text,
                        "notif_pushes_total{{platform=\"{}\",outcome=\"{}\"}} {}",
                        platform.as_str(),
                        outcome.as_str(),
                        stats.count(platform, outcome)
                    );
                }
            }
            counter(
                &mut text,
                "notif_subscriptions_pruned_total",
                "Subscriptions removed because the provider reported the endpoint gone.",
                stats.total(AttemptOutcome::EndpointGone),
            );
        }
        text
    }
}

/// `text` with `node="<node>"` added to the labels of every series line (comments are left
/// as they are).
fn label_every_series(text: &str, node: &str) -> String {
    let node = node.replace('\\', "\\\\").replace('"', "\\\"");
    let mut labelled = String::with_capacity(text.len() + text.lines().count() * (node.len() + 10));
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            labelled.push_str(line);
        } else if let Some((name, rest)) = line.split_once('{') {
            let _ = write!(labelled, "{name}{{node=\"{node}\",{rest}");
        } else if let Some((name, value)) = line.split_once(' ') {
            let _ = write!(labelled, "{name}{{node=\"{node}\"}} {value}");
        } else {
            labelled.push_str(line);
        }
        labelled.push('\n');
    }
    labelled
}

#[cfg(test)]
mod tests {
    use super::label_every_series;

    #[test]
    fn every_series_carries_the_node() {
        let text = "# HELP a A.\n# TYPE a gauge\na 1\nb{x=\"y\"} 2\n";
        assert_eq!(
            label_every_series(text, "n\"1"),
            "# HELP a A.\n# TYPE a gauge\na{node=\"n\\\"1\"} 1\nb{node=\"n\\\"1\",x=\"y\"} 2\n"
        );
    }
}

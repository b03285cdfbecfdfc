//! The call budget against a simulator that enforces Security Center's quota: sasrelay's
//! default rate stays under it; a rate above it is throttled (so the simulator can tell).

use sasrelay::finding::Domain;
use sasrelay::sas::source::ReadWindow;
use sasrelay::simulator::{self, SimConfig, SimHandle, Simulator};

/// Reads alerts from every cluster of `sim` (one `DescribeSuspEvents` per cluster: listed per
/// cluster, not account-wide) with `extra` in the `[[source]]` table.
async fn read_every_cluster(sim: &SimHandle, extra: &str) -> usize {
    let clusters: Vec<String> = sim
        .clusters()
        .iter()
        .map(|c| format!("\"{}\"", c.cluster_id))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("sk");
    std::fs::write(&secret, simulator::DEMO_ACCESS_KEY_SECRET).unwrap();
    let text = format!(
        "[[source]]\nname = \"sim\"\nregion = \"cn-hangzhou\"\nendpoint = \"{}\"\nclusters = [{}]\nwindow_listing = \"per_cluster\"\ncredentials = {{ type = \"access_key\", access_key_id = \"sasrelay-sim\", access_key_secret = {{ file = \"{}\" }} }}\n{extra}\n",
        sim.base_url(),
        clusters.join(", "),
        secret.display()
    );
    let (_, source) = crate::support::connect_first_source(&text).await;
    let now = time::OffsetDateTime::now_utc();
    let sweep = source
        .read(Domain::Alerts, &ReadWindow::open_now(now))
        .await
        .unwrap();
    sweep.findings.len()
}

fn quota_sim() -> SimConfig {
    SimConfig {
        clusters: 20,
        quota_per_second: Some(10),
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn the_default_rate_stays_under_the_quota_and_a_higher_one_is_throttled() {
    // Default: 5 calls a second per action; 20 clusters, 20 calls: never throttled.
    let sim = Simulator::start(quota_sim()).await.unwrap();
    let listed = read_every_cluster(&sim, "").await;
    assert!(listed > 0);
    assert_eq!(sim.call_count("DescribeSuspEvents"), 20);
    assert_eq!(sim.throttled_count(), 0, "the budget kept under the quota");

    // Fifty a second on a fresh simulator (a bucket of its own: another site): the simulator
    // throttles, and the client's retries still read everything.
    let sim = Simulator::start(quota_sim()).await.unwrap();
    let again = read_every_cluster(
        &sim,
        "calls_per_second = 50\nmax_attempts = 10\nretry_initial_delay = \"100ms\"",
    )
    .await;
    assert_eq!(again, listed, "same world, same findings");
    assert!(
        sim.throttled_count() > 0,
        "the simulator enforces its quota"
    );
}

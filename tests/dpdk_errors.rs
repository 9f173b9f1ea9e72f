//! Bad EAL arguments, a missing device and a pool that cannot be created
//! give clear errors naming the cause, never a panic or a hang.

mod common;

use common::*;
use pmdlb::dpdk::{DpdkError, Eal, Mempool, Port, PortBuilder, PortConfig};

fn bad_args_body() {
    let prefix = file_prefix("badargs");
    let mut args = eal_args(&prefix, "0", &[]);
    args.push("--this-is-not-an-eal-option".into());
    let err = Eal::init(&args).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DpdkError::EalInit { .. }), "{err:?}");
    assert!(text.contains("--this-is-not-an-eal-option"), "{text}");
    cleanup_prefix(&prefix);
}

#[test]
fn bad_eal_arguments() {
    if is_child("bad_eal_arguments") {
        return bad_args_body();
    }
    child_must_pass("bad_eal_arguments");
}

fn nul_arg_body() {
    let err = Eal::init(&["pmdlb", "bad\0arg"]).unwrap_err();
    assert!(matches!(err, DpdkError::BadArgument(_)), "{err:?}");
}

#[test]
fn nul_in_argument() {
    if is_child("nul_in_argument") {
        return nul_arg_body();
    }
    child_must_pass("nul_in_argument");
}

fn missing_device_body() {
    let prefix = file_prefix("nodev");
    let args = eal_args(&prefix, "0", &["--vdev", "net_null0"]);
    {
        let eal = Eal::init(&args).expect("EAL init");
        let err = Port::find("net_pcap7").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("net_pcap7") && text.contains("net_null0"),
            "{text}"
        );
        let err = Mempool::new("huge_pool", u32::MAX / 2, 0, 2176, -1).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, DpdkError::Mempool { .. }), "{err:?}");
        assert!(text.contains("huge_pool"), "{text}");
        let p = Mempool::new("dup", 63, 0, 2176, -1).expect("first pool");
        let err = Mempool::new("dup", 63, 0, 2176, -1).unwrap_err();
        assert!(err.to_string().contains("exist"), "{err}");
        drop(p);
        drop(eal);
    }
    cleanup_prefix(&prefix);
}

#[test]
fn missing_device_and_pool_errors() {
    if is_child("missing_device_and_pool_errors") {
        return missing_device_body();
    }
    child_must_pass("missing_device_and_pool_errors");
}

/// A configuration the device refuses leaves the device as it was: the
/// error path has no `Port` to drop, so nothing closes (and releases) a
/// device that was never configured, and a valid configuration still works.
fn refused_port_config_body() {
    let prefix = file_prefix("badqueues");
    let args = eal_args(&prefix, "0", &["--vdev", "net_null0"]);
    {
        let eal = Eal::init(&args).expect("EAL init");
        let pool = Mempool::new("q_pool", 1023, 0, 2176, -1).expect("pool");
        let id = Port::find("net_null0").expect("port");
        let b = PortBuilder::new(id).expect("probe");
        let too_many = b.info().max_rx_queues.saturating_add(1);
        let err = b
            .configure(
                &PortConfig {
                    rx_queues: too_many,
                    ..Default::default()
                },
                &pool,
            )
            .unwrap_err();
        assert!(matches!(err, DpdkError::PortLimit { .. }), "{err:?}");
        assert!(err.to_string().contains("RX queues asked"), "{err}");
        let again = Port::find("net_null0").expect("the refused port still exists");
        assert_eq!(again, id);
        let mut p = PortBuilder::new(id)
            .expect("probe again")
            .configure(
                &PortConfig {
                    rx_desc: 128,
                    tx_desc: 128,
                    ..Default::default()
                },
                &pool,
            )
            .expect("a valid configuration after a refused one");
        p.start().expect("start");
        drop(p);
        drop(pool);
        drop(eal);
    }
    cleanup_prefix(&prefix);
}

#[test]
fn refused_port_config_leaves_the_device_usable() {
    if is_child("refused_port_config_leaves_the_device_usable") {
        return refused_port_config_body();
    }
    child_must_pass("refused_port_config_leaves_the_device_usable");
}

fn missing_vdev_driver_body() {
    let prefix = file_prefix("nodrv");
    let args = eal_args(&prefix, "0", &["--vdev", "net_doesnotexist0"]);
    let err = Eal::init(&args).unwrap_err();
    assert!(
        err.to_string().contains("EAL initialisation failed"),
        "{err}"
    );
    cleanup_prefix(&prefix);
}

#[test]
fn unknown_vdev_driver() {
    if is_child("unknown_vdev_driver") {
        return missing_vdev_driver_body();
    }
    child_must_pass("unknown_vdev_driver");
}

/// A launch that fails after an earlier job started (here: the one worker
/// lcore is already busy) leaves no loop running: dropping the set stops and
/// joins the job that did start, within a bound, instead of hanging.
fn failed_launch_stops_started_jobs_body() {
    use pmdlb::dpdk::LcoreJobs;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    // A hang is a failure of the child, not of the whole test run.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(30));
        eprintln!("failed_launch_stops_started_jobs: still waiting after 30 s");
        std::process::exit(3);
    });
    let prefix = file_prefix("launchfail");
    let eal = Eal::init(&eal_args(&prefix, "0-1", &[])).expect("EAL init");
    let lcore = eal.worker_lcores()[0];
    let stop = Arc::new(AtomicBool::new(false));
    let ran = Arc::new(AtomicBool::new(false));
    let result = {
        let mut jobs = LcoreJobs::new(Arc::clone(&stop));
        let (s, r) = (Arc::clone(&stop), Arc::clone(&ran));
        jobs.launch(lcore, move || {
            r.store(true, Ordering::Relaxed);
            while !s.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        })
        .expect("first launch");
        // The lcore is running the first job: this launch must fail.
        jobs.launch(lcore, || ())
    };
    let err = result.expect_err("a second job on a busy lcore");
    assert!(err.to_string().contains("lcore1"), "{err}");
    assert!(
        stop.load(Ordering::Relaxed),
        "the failed set set its stop flag"
    );
    assert!(ran.load(Ordering::Relaxed), "the first job ran");
    // The lcore is idle again: a new job runs and is joined.
    let t = Instant::now();
    let mut again = LcoreJobs::new(Arc::new(AtomicBool::new(false)));
    again.launch(lcore, || ()).expect("the lcore is free again");
    assert!(again.stop_and_wait().is_empty());
    assert!(t.elapsed() < Duration::from_secs(10));
    drop(eal);
    cleanup_prefix(&prefix);
}

#[test]
fn failed_launch_stops_started_jobs() {
    if is_child("failed_launch_stops_started_jobs") {
        return failed_launch_stops_started_jobs_body();
    }
    child_must_pass("failed_launch_stops_started_jobs");
}

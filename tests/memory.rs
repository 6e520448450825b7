//! `deepnet memory-bench` end to end on tiny budgets: every problem kind runs through the one
//! loop and lands in the table with its trivial baseline; bad settings fail with one line.

mod common;

use common::{assert_fails_cleanly, deepnet, stderr};

#[test]
fn every_problem_and_cell_trains_and_is_tabled_against_its_baseline() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mb");
    let fixture = common::fixture_dir();
    let o = deepnet(&[
        "memory-bench",
        "--problem",
        "adding,copy,row-fmnist",
        "--length",
        "12",
        "--cells",
        "tanh,irnn,lstm,gru",
        "--clip",
        "none,1",
        "--steps",
        "4",
        "--evals",
        "2",
        "--hidden-size",
        "8",
        "--train-images",
        "200",
        "--data",
        fixture.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let rows = results.as_array().unwrap();
    assert_eq!(rows.len(), 3 * 2 * 4);
    for r in rows {
        assert_eq!(r["curve"].as_array().unwrap().len(), 2, "{r}");
        // One gradient norm per step, before and after training: T = 12 for adding, 12 + 20
        // for copy, 28 rows of Fashion-MNIST.
        let steps = match r["problem"]["problem"].as_str().unwrap() {
            "adding" => 12,
            "copy" => 32,
            _ => 28,
        };
        for key in ["gradient_untrained", "gradient_trained"] {
            let g = r[key].as_array().unwrap();
            assert_eq!(g.len(), steps, "{key} {r}");
            assert!(
                g.iter().all(|v| v.as_f64().unwrap().is_finite()),
                "{key} {r}"
            );
        }
        let baseline = r["baseline"].as_f64().unwrap();
        assert!(baseline > 0.0);
    }
    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    for needle in ["adding-T12", "copy-T12", "row-fmnist", "irnn", "gru"] {
        assert!(table.contains(needle), "{table}");
    }
    // Fashion-MNIST rows have an accuracy, the adding problem none.
    assert!(rows.iter().any(|r| r["test_accuracy"].is_number()));
    assert!(rows.iter().any(|r| r["test_accuracy"].is_null()));
    assert!(out.join("curves.png").exists());
    for picture in [
        "gradients-adding-T12.png",
        "gradients-copy-T12.png",
        "gradients-row-fmnist.png",
    ] {
        assert!(out.join(picture).exists(), "{picture}");
    }
    // Two invocations reported as one.
    let merged = tmp.path().join("merged");
    let both = format!("{},{}", out.display(), out.display());
    let o = deepnet(&[
        "memory-bench",
        "--combine",
        &both,
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let merged_rows: serde_json::Value =
        serde_json::from_slice(&std::fs::read(merged.join("results.json")).unwrap()).unwrap();
    assert_eq!(merged_rows.as_array().unwrap().len(), 2 * rows.len());
    assert!(merged.join("gradients-copy-T12.png").exists());
}

#[test]
fn bad_settings_fail_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    let run = |extra: &[&str]| {
        let mut args = vec!["memory-bench", "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        deepnet(&args)
    };
    assert_fails_cleanly(&run(&["--clip", "sometimes"]), "--clip");
    assert_fails_cleanly(&run(&["--length", "0"]), "--length");
    assert_fails_cleanly(&run(&["--steps", "10", "--evals", "3"]), "--evals");
    assert_fails_cleanly(
        &run(&["--problem", "row-fmnist", "--data", "/nonexistent"]),
        "nonexistent",
    );
    assert_fails_cleanly(&run(&["--combine", "/nonexistent"]), "nonexistent");
    let garbage = tmp.path().join("garbage");
    std::fs::create_dir_all(&garbage).unwrap();
    std::fs::write(garbage.join("results.json"), "[{\"cell\": 3}]").unwrap();
    assert_fails_cleanly(
        &run(&["--combine", garbage.to_str().unwrap()]),
        "not a memory-bench results file",
    );
}

//! `trainer serve` in a real browser: headless Chromium driven over
//! WebDriver (Debian's `chromium` and `chromium-driver`; `cargo xtask setup
//! --browser` installs them). Draws digits on the canvas with pointer
//! events, watches a run's curves update when a record is appended, and
//! opens the mistakes view. With `TRAINER_SCREENSHOTS=DIR` the three views
//! are saved there as PNG (the README's come from `docs/images`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use common::KillOnDrop as Process;

fn find_program(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "{name} is not installed: the browser tests need Chromium and its WebDriver. Run `cargo xtask setup --browser` \
             (as root on Debian or Ubuntu it installs the packages `chromium` and `chromium-driver`), or install them yourself"
        )
    })
}

/// `trainer serve` on a free loopback port, and its URL.
fn start_server(runs: &Path) -> (Process, String) {
    let (server, line) = common::start_serve(runs);
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"));
    (server, url.to_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// chromedriver on a free port, once it accepts connections.
fn start_driver() -> (Process, u16) {
    let port = free_port();
    let child = Command::new(find_program("chromedriver"))
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    (Process(child), port)
}

async fn browser(port: u16) -> Client {
    find_program("chromium");
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        // As root (CI), Chromium needs --no-sandbox; nothing is fetched from outside.
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,900"]}),
    );
    // chromedriver listens on loopback over plain HTTP: no TLS stack needed.
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("cannot start headless Chromium through chromedriver")
}

/// Waits until the JavaScript expression `condition` is true.
async fn wait_until(client: &Client, condition: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let value = client.execute(&format!("return Boolean({condition});"), Vec::new()).await.unwrap();
        if value == Value::Bool(true) {
            return;
        }
        if Instant::now() > deadline {
            let page = client.execute("return document.body.innerText;", Vec::new()).await.unwrap();
            panic!("timed out waiting for {what} ({condition}); the page says:\n{}", page.as_str().unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Draws a stroke through `points` (in the pad's 280x280 coordinates) with pointer events.
async fn draw(client: &Client, points: &[(f64, f64)]) {
    const DRAW: &str = r#"
        const pad = document.getElementById("pad");
        const box = pad.getBoundingClientRect();
        const event = (type, [x, y]) => new PointerEvent(type, {
            clientX: box.left + x * box.width / 280, clientY: box.top + y * box.height / 280,
            pointerId: 7, pointerType: "pen", isPrimary: true, buttons: type === "pointerup" ? 0 : 1, bubbles: true,
        });
        const points = arguments[0];
        pad.dispatchEvent(event("pointerdown", points[0]));
        for (const point of points.slice(1)) pad.dispatchEvent(event("pointermove", point));
        pad.dispatchEvent(event("pointerup", points[points.length - 1]));
    "#;
    let points: Vec<Value> = points.iter().map(|&(x, y)| json!([x, y])).collect();
    client.execute(DRAW, vec![Value::Array(points)]).await.unwrap();
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    image::load_from_memory(&png).expect("the screenshot is a PNG");
    if let Some(dir) = std::env::var_os("TRAINER_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(Path::new(&dir).join(name), png).unwrap();
    }
}

/// A runs folder holding a copy of the trained fixture's run.
fn runs_folder(dir: &Path) -> PathBuf {
    let fixture = common::trained_checkpoint();
    let run = dir.join("runs/mnist-quick");
    std::fs::create_dir_all(&run).unwrap();
    for name in ["best.safetensors", "metrics.jsonl", "config.json"] {
        std::fs::copy(fixture.parent().unwrap().join(name), run.join(name)).unwrap();
    }
    dir.join("runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_draws_watches_runs_and_shows_mistakes_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let runs = runs_folder(dir.path());
    let (_server, url) = start_server(&runs);
    let (_driver, port) = start_driver();
    let client = browser(port).await;
    client.goto(&url).await.unwrap();
    client.wait().for_element(Locator::Id("pad")).await.unwrap();
    wait_until(&client, "document.querySelectorAll('#model-select option').length >= 2", "the model list").await;

    // A 1: one vertical stroke.
    draw(&client, &(0..=20).map(|step| (140.0 + step as f64 * 0.5, 40.0 + step as f64 * 10.0)).collect::<Vec<_>>())
        .await;
    wait_until(&client, "document.getElementById('predicted').textContent === '1'", "the prediction 1").await;
    wait_until(&client, "document.querySelectorAll('#top3 li').length === 3", "three bars").await;

    // A 0: a closed oval, after clearing.
    client.find(Locator::Id("clear")).await.unwrap().click().await.unwrap();
    wait_until(&client, "document.getElementById('predicted').textContent === '–'", "a cleared pad").await;
    let oval: Vec<(f64, f64)> = (0..=40)
        .map(|step| {
            let angle = step as f64 / 40.0 * std::f64::consts::TAU;
            (140.0 + 60.0 * angle.sin(), 140.0 - 95.0 * angle.cos())
        })
        .collect();
    draw(&client, &oval).await;
    wait_until(&client, "document.getElementById('predicted').textContent === '0'", "the prediction 0").await;
    screenshot(&client, "serve-draw.png").await;

    // Runs: the curves are drawn and follow metrics.jsonl as a run appends to it.
    client.find(Locator::Id("tab-runs")).await.unwrap().click().await.unwrap();
    wait_until(
        &client,
        "document.querySelectorAll('svg[data-chart=loss] path.series').length === 2",
        "the loss curves",
    )
    .await;
    wait_until(&client, "document.getElementById('run-summary').textContent.includes('3 epochs recorded')", "3 epochs")
        .await;
    let metrics = runs.join("mnist-quick/metrics.jsonl");
    let text = std::fs::read_to_string(&metrics).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let test_line = lines.pop().unwrap();
    let mut fourth: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    fourth["epoch"] = json!(3);
    fourth["validation_accuracy"] = json!(0.99);
    fourth["best_epoch"] = json!(3);
    // First half a line, as a writer mid-append leaves it: nothing breaks.
    let mut grown = format!("{}\n", lines.join("\n"));
    let record = fourth.to_string();
    std::fs::write(&metrics, format!("{grown}{}", &record[..record.len() / 2])).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    grown.push_str(&format!("{record}\n{test_line}\n"));
    std::fs::write(&metrics, grown).unwrap();
    wait_until(
        &client,
        "document.getElementById('run-summary').textContent.includes('4 epochs recorded')",
        "the appended epoch",
    )
    .await;
    wait_until(&client, "document.querySelectorAll('svg[data-chart=accuracy] path.series[data-series=validation]').length === 1 && document.querySelector('svg[data-chart=accuracy] path.series[data-series=validation]').getAttribute('d').split('L').length === 4", "four points on the curve").await;
    screenshot(&client, "serve-runs.png").await;

    // Mistakes: the fixture misclassifies some test digits; one opens with its probabilities.
    client.find(Locator::Id("tab-mistakes")).await.unwrap().click().await.unwrap();
    wait_until(&client, "document.querySelectorAll('.mistake').length > 10", "the mistakes").await;
    client.find(Locator::Css(".mistake")).await.unwrap().click().await.unwrap();
    wait_until(
        &client,
        "document.querySelectorAll('#mistake-bars li').length === 10",
        "the probabilities of a mistake",
    )
    .await;
    wait_until(&client, "document.getElementById('mistake-title').textContent.includes('true')", "the mistake's title")
        .await;
    screenshot(&client, "serve-mistakes.png").await;

    // A phone-width window still shows the pad whole.
    client.set_window_size(390, 844).await.unwrap();
    client.find(Locator::Id("tab-draw")).await.unwrap().click().await.unwrap();
    let width = client
        .execute("return document.getElementById('pad').getBoundingClientRect().right;", Vec::new())
        .await
        .unwrap();
    assert!(width.as_f64().unwrap() <= 390.0, "the pad overflows a phone-width screen: {width}");
    client.close().await.unwrap();
}

/// Markup that runs script if a page ever parses it as HTML.
const HOSTILE: &str = "<img src=x onerror=\"window.pwned=(window.pwned||0)+1\">";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_run_cannot_run_script_in_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    // The folder's name, a setting's name and value, and a record's fields all carry markup.
    let name = "<img src=x onerror=window.pwned=100>";
    let run = runs.join(name);
    std::fs::create_dir_all(&run).unwrap();
    let config = json!({"settings": {"network": HOSTILE, "epochs": 3, HOSTILE: 1, "data": {"dataset": HOSTILE}}});
    std::fs::write(run.join("config.json"), config.to_string()).unwrap();
    let record = json!({"epoch": 0, "loss": 0.5, "train_accuracy": 0.9, "validation_accuracy": 0.91,
        "validation_loss": 0.3, "best_epoch": 0, "note": HOSTILE});
    std::fs::write(run.join("metrics.jsonl"), format!("{record}\n")).unwrap();
    let (_server, url) = start_server(&runs);
    let (_driver, port) = start_driver();
    let client = browser(port).await;
    client.goto(&url).await.unwrap();
    client.find(Locator::Id("tab-runs")).await.unwrap().click().await.unwrap();
    wait_until(&client, "document.querySelectorAll('#run-list li').length === 1", "the planted run listed").await;
    client.find(Locator::Css("#run-list li")).await.unwrap().click().await.unwrap();
    wait_until(&client, "document.querySelector('#run-detail table.settings') !== null", "the run's settings").await;
    // Give an image that failed to load time to fire its handler.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ran = client.execute("return window.pwned === undefined ? 0 : window.pwned;", Vec::new()).await.unwrap();
    assert_eq!(ran, json!(0), "markup from a run's files ran script");
    let images = client.execute("return document.querySelectorAll('#view-runs img').length;", Vec::new()).await;
    assert_eq!(images.unwrap(), json!(0), "markup from a run's files became elements");
    let shown = client.execute("return document.getElementById('view-runs').textContent;", Vec::new()).await.unwrap();
    let shown = shown.as_str().unwrap();
    assert!(shown.contains(name) && shown.contains("onerror=\\\"window.pwned"), "shown as text: {shown}");

    // The policy is a second line: inline script is refused even if markup got in.
    let policy = client
        .execute_async(
            "const done = arguments[0]; fetch('/').then((r) => done(r.headers.get('content-security-policy')));",
            Vec::new(),
        )
        .await
        .unwrap();
    assert!(policy.as_str().unwrap().contains("script-src 'self'"), "{policy}");
    client.execute("document.body.insertAdjacentHTML('beforeend', arguments[0]);", vec![json!(HOSTILE)]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ran = client.execute("return window.pwned === undefined ? 0 : window.pwned;", Vec::new()).await.unwrap();
    assert_eq!(ran, json!(0), "the Content-Security-Policy let an inline handler run");
    client.close().await.unwrap();
}

/// A copy of the trained fixture's run at `run`, its recipe's seed and its
/// test accuracy (`None`: not finished) changed.
fn sweep_member(run: &Path, seed: u64, test_accuracy: Option<f64>) {
    let fixture = common::trained_checkpoint();
    let from = fixture.parent().unwrap();
    std::fs::create_dir_all(run).unwrap();
    std::fs::copy(from.join("best.safetensors"), run.join("best.safetensors")).unwrap();
    let mut config: Value = serde_json::from_slice(&std::fs::read(from.join("config.json")).unwrap()).unwrap();
    config["recipe"]["seed"] = json!(seed);
    std::fs::write(run.join("config.json"), config.to_string()).unwrap();
    let records = std::fs::read_to_string(from.join("metrics.jsonl")).unwrap();
    let mut lines: Vec<String> = records.lines().filter(|line| !line.contains("\"test\"")).map(str::to_owned).collect();
    if let Some(accuracy) = test_accuracy {
        lines.push(json!({"test": {"accuracy": accuracy, "loss": 0.1}}).to_string());
    }
    std::fs::write(run.join("metrics.jsonl"), lines.join("\n") + "\n").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_is_listed_with_its_spread_per_recipe_and_a_member_opens() {
    let dir = tempfile::tempdir().unwrap();
    let runs = runs_folder(dir.path());
    let sweep = runs.join("seeds");
    sweep_member(&sweep.join("seed-recipe/seed-0"), 0, Some(0.91));
    sweep_member(&sweep.join("seed-recipe/seed-1"), 1, Some(0.93));
    sweep_member(&sweep.join("seed-recipe/seed-2"), 2, None);
    std::fs::create_dir_all(sweep.join("logs")).unwrap();
    std::fs::write(sweep.join("logs/1_0.out"), "a task's log").unwrap();
    let (_server, url) = start_server(&runs);
    let (_driver, port) = start_driver();
    let client = browser(port).await;
    client.goto(&url).await.unwrap();
    client.find(Locator::Id("tab-runs")).await.unwrap().click().await.unwrap();
    wait_until(&client, "document.querySelectorAll('section.sweep[data-sweep=seeds] li').length === 3", "the members")
        .await;
    let row = client
        .execute(
            "return [...document.querySelectorAll('section.sweep table.groups td')].map((cell) => cell.textContent);",
            Vec::new(),
        )
        .await
        .unwrap();
    // Mean of 0.91 and 0.93, sample std 0.0141, over the 2 finished of 3.
    assert_eq!(row, json!(["all runs", "2/3", "0.9200", "0.0141", "0.9100", "0.9300"]));
    let single = client.execute("return document.querySelectorAll('#run-list li').length;", Vec::new()).await;
    assert_eq!(single.unwrap(), json!(1), "the sweep's runs are not listed as single runs");
    screenshot(&client, "serve-sweep.png").await;
    client.find(Locator::Css("li[data-run='seeds/seed-recipe/seed-1']")).await.unwrap().click().await.unwrap();
    wait_until(
        &client,
        "document.querySelector('#run-detail h2').textContent === 'seeds/seed-recipe/seed-1' && document.getElementById('run-summary').textContent.includes('test accuracy 0.9300')",
        "the opened member",
    )
    .await;
    wait_until(&client, "document.querySelectorAll('svg[data-chart=accuracy] path.series').length === 2", "its curves")
        .await;
    client.close().await.unwrap();
}

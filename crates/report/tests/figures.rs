//! Every figure from synthetic runs: drawn, decodable, the right size, and
//! carrying what it must show; bad input is an error, not a panic.

use report::{
    Curves, EpochPoint, Figure, Mistake, Page, ReportError, confusion_png, curves_png, curves_svg, index_html,
    mistakes_png,
};

fn curves(n_epochs: u64, test_accuracy: Option<f64>) -> Curves {
    let epochs = (0..n_epochs)
        .map(|epoch| {
            let progress = 1.0 - 0.5f64.powf(epoch as f64 / 3.0 + 1.0);
            EpochPoint {
                epoch,
                train_loss: 0.4 * (1.0 - progress) + 0.01,
                validation_loss: Some(0.35 * (1.0 - progress) + 0.02),
                train_accuracy: 0.9 + 0.09 * progress,
                validation_accuracy: 0.92 + 0.075 * progress,
            }
        })
        .collect();
    Curves {
        title: "synthetic run".into(),
        epochs,
        best_epoch: Some(n_epochs.saturating_sub(2)),
        test_accuracy,
        train_sample_images: Some(500),
    }
}

fn decode(png: &[u8]) -> image::RgbImage {
    image::load_from_memory(png).unwrap().to_rgb8()
}

/// Writes a figure to `REPORT_FIGURES_DIR` when set, to look at.
fn keep(name: &str, bytes: &[u8]) {
    if let Some(dir) = std::env::var_os("REPORT_FIGURES_DIR") {
        std::fs::write(std::path::Path::new(&dir).join(name), bytes).unwrap();
    }
}

#[test]
fn curves_show_both_series_the_best_epoch_and_the_test_accuracy() {
    let svg = curves_svg(&curves(20, Some(0.9957))).unwrap();
    for expected in [
        "synthetic run",
        "loss (cross-entropy)",
        "accuracy",
        "training",
        "validation",
        "best epoch 19",
        "test accuracy 0.9957",
    ] {
        assert!(svg.contains(expected), "the SVG lacks {expected:?}");
    }
    keep("curves.svg", svg.as_bytes());
    let png = curves_png(&curves(20, Some(0.9957))).unwrap();
    keep("curves.png", &png);
    let image = decode(&png);
    assert_eq!(image.dimensions(), (1200, 480));
    // The two series' colours are drawn.
    let has = |rgb: [u8; 3]| image.pixels().any(|pixel| pixel.0 == rgb);
    assert!(has([31, 119, 180]) && has([255, 127, 14]), "a series is missing");
    // Text is drawn with the bundled font: dark anti-aliased pixels exist in the title band.
    assert!((0..1200).any(|x| (0..30).any(|y| image.get_pixel(x, y).0[0] < 100)), "no title text");
}

#[test]
fn a_run_still_training_has_no_test_accuracy_and_one_epoch_is_enough() {
    let svg = curves_svg(&curves(1, None)).unwrap();
    assert!(!svg.contains("test accuracy"));
    let empty = Curves { epochs: Vec::new(), ..curves(0, None) };
    assert!(matches!(curves_svg(&empty), Err(ReportError::Input { .. })));
}

#[test]
fn the_confusion_matrix_shows_every_count() {
    let names: Vec<String> = (0..10).map(|digit| digit.to_string()).collect();
    let mut confusion = vec![vec![0u64; 10]; 10];
    for (class, row) in confusion.iter_mut().enumerate() {
        row[class] = 1000 - class as u64;
        row[(class + 3) % 10] = class as u64;
    }
    let png = confusion_png(&confusion, &names, "test set").unwrap();
    keep("confusion.png", &png);
    let image = decode(&png);
    // The diagonal is dark, an empty cell white.
    let cell = |row: u32, col: u32| image.get_pixel(150 + col * 56 + 5, 110 + row * 56 + 5).0;
    assert!(cell(4, 4)[0] < 60, "{:?}", cell(4, 4));
    assert_eq!(cell(4, 5), [255, 255, 255]);
    assert!(cell(4, 7)[0] < 255, "a mistake's cell is shaded");
    let wrong = confusion_png(&confusion[..9], &names, "test set");
    assert!(matches!(wrong, Err(ReportError::Input { .. })));
}

#[test]
fn mistakes_are_drawn_in_order_with_their_images() {
    let names: Vec<String> = (0..10).map(|digit| digit.to_string()).collect();
    let mistakes: Vec<Mistake> = (0..23)
        .map(|index| Mistake {
            pixels: (0..784).map(|pixel| if pixel % 28 == index % 28 { 1.0 } else { 0.0 }).collect(),
            true_class: index % 10,
            predicted_class: (index + 1) % 10,
            probability: 1.0 - index as f32 / 100.0,
        })
        .collect();
    let png = mistakes_png(&mistakes, 28, &names, "23 of 10000 misclassified").unwrap();
    keep("misclassified.png", &png);
    let image = decode(&png);
    assert_eq!(image.height(), 3 * (84 + 34) + 50, "23 mistakes make 3 rows of 10");
    // The first image's white column (column 0, scaled 3x) is where it belongs.
    assert_eq!(image.get_pixel(8 + 12, 46 + 10).0, [255, 255, 255]);
    assert_eq!(image.get_pixel(8 + 12 + 5, 46 + 10).0, [0, 0, 0]);
    let bad = Mistake { pixels: vec![0.0; 10], ..mistakes[0].clone() };
    assert!(matches!(mistakes_png(&[bad], 28, &names, "x"), Err(ReportError::Input { .. })));
    let unnamed = Mistake { predicted_class: 12, ..mistakes[0].clone() };
    assert!(matches!(mistakes_png(&[unnamed], 28, &names, "x"), Err(ReportError::Input { .. })));
}

#[test]
fn the_page_inlines_everything_and_escapes_text() {
    let svg = curves_svg(&curves(3, Some(0.99))).unwrap();
    let page = Page {
        title: "run <script>".into(),
        facts: vec![("test accuracy".into(), "0.9900".into())],
        settings: vec![("save_dir".into(), "nets/a&b".into())],
        figures: vec![Figure::Svg { title: "curves".into(), svg }],
        per_class: vec![("0".into(), 975, 980), ("1".into(), 0, 0)],
        notes: vec!["no checkpoint: no confusion matrix".into()],
        tables: vec![report::Table {
            title: "runs <b>".into(),
            header: vec!["run".into()],
            rows: vec![vec!["seed-0 & <i>".into()]],
        }],
    };
    let html = index_html(&page);
    keep("index.html", html.as_bytes());
    assert!(html.contains("run &lt;script&gt;") && !html.contains("<script>"));
    assert!(html.contains("nets/a&amp;b"));
    assert!(html.contains("<h2>runs &lt;b&gt;</h2>") && html.contains("<td>seed-0 &amp; &lt;i&gt;</td>"));
    assert!(html.contains("<svg") && !html.contains("<?xml"));
    assert!(html.contains("<td class=\"n\">0.9949</td>"), "per-class accuracy");
    assert!(
        !html.contains("http://") && !html.contains("https://") || html.matches("http").all(|_| html.contains("xmlns"))
    );
}

/// The text of every `<text>` element of an SVG.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|rest| Some(rest.split_once('>')?.1.split_once("</text>")?.0.to_owned()))
        .collect()
}

#[test]
fn every_epoch_is_labelled_once_and_only_whole_epochs() {
    for n_epochs in [1u64, 2, 3, 7, 15, 50] {
        let svg = curves_svg(&curves(n_epochs, None)).unwrap();
        let texts = svg_texts(&svg);
        let labels: Vec<u64> = texts.iter().filter_map(|text| text.trim().parse::<u64>().ok()).collect();
        // Two charts, each with its own epoch axis.
        let mut per_chart = labels.clone();
        per_chart.sort_unstable();
        per_chart.dedup();
        assert_eq!(labels.len(), 2 * per_chart.len(), "{n_epochs} epochs: labels {labels:?}");
        assert!(per_chart.iter().all(|&epoch| (1..=n_epochs.max(2)).contains(&epoch)), "{per_chart:?}");
        assert!(per_chart.len() >= 2, "{n_epochs} epochs: {per_chart:?}");
        assert!(!texts.iter().any(|text| text.contains('.') && text.trim().parse::<f64>().is_ok_and(|v| v > 1.5)));
    }
}

#[test]
fn the_training_accuracy_is_drawn_with_its_interval_and_says_so() {
    let svg = curves_svg(&curves(5, None)).unwrap();
    assert!(svg.contains("training (500 random images an epoch, 95% interval)"), "the legend names the sample");
    assert!(svg.contains("<polygon"), "the interval is a band");
    let mut without = curves(5, None);
    without.train_sample_images = None;
    let svg = curves_svg(&without).unwrap();
    assert!(svg.contains("training (a random sample)") && !svg.contains("<polygon"));
    let (low, high) = report::wilson_interval(1.0, 500);
    assert!(high == 1.0 && low > 0.99 && low < 0.995, "{low}");
}

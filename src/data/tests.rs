use super::*;

fn digits_spec() -> DataSpec {
    DataSpec {
        source: DataSource::Digits,
        shape: None,
        scale: 16.0,
        test_fraction: 0.2,
        seed: 0,
        resize: Resize::Bilinear,
    }
}

#[test]
fn digits_load_with_a_stratified_seeded_split() {
    let d = load(&digits_spec()).unwrap();
    assert_eq!(d.labels.len(), 1797);
    assert_eq!((d.hwc, d.classes), ([8, 8, 1], 10));
    assert_eq!(d.train.len() + d.test.len(), 1797);
    // Every class keeps its share: round(count * 0.2) test samples.
    for c in 0..10 {
        let count = d.labels.iter().filter(|&&y| y == c).count();
        let held = d.test.iter().filter(|&&i| d.labels[i] == c).count();
        assert_eq!(held, (count as f64 * 0.2).round() as usize, "class {c}");
    }
    assert!(d.features.iter().all(|&v| (0.0..=1.0).contains(&v)));
    // The first image of the file, as scikit-learn's load_digits() returns it.
    assert_eq!(
        &d.features[..8],
        &[
            0.0,
            0.0,
            5.0 / 16.0,
            13.0 / 16.0,
            9.0 / 16.0,
            1.0 / 16.0,
            0.0,
            0.0
        ]
    );
    let again = load(&digits_spec()).unwrap();
    assert_eq!(
        (again.test, again.sha256),
        (d.test.clone(), d.sha256.clone())
    );
    let other = load(&DataSpec {
        seed: 1,
        ..digits_spec()
    })
    .unwrap();
    assert_ne!(other.test, d.test);
    assert_ne!(other.sha256, d.sha256);
}

#[test]
fn resize_bilinear_nearest_and_pad() {
    let plane = [0.0, 1.0, 2.0, 3.0]; // 2x2
    let mut out = Vec::new();
    resize_plane(&plane, (2, 2), (4, 4), Resize::Bilinear, &mut out);
    // PyTorch F.interpolate(x, size=4, mode="bilinear", align_corners=False).
    let row0 = [0.0, 0.25, 0.75, 1.0];
    assert_eq!(&out[..4], &row0);
    assert_eq!(&out[4..8], &[0.5, 0.75, 1.25, 1.5]);
    assert_eq!(&out[12..], &[2.0, 2.25, 2.75, 3.0]);
    out.clear();
    resize_plane(&plane, (2, 2), (4, 4), Resize::Nearest, &mut out);
    assert_eq!(&out[..8], &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
    out.clear();
    resize_plane(&plane, (2, 2), (4, 4), Resize::Pad, &mut out);
    assert_eq!(
        out,
        vec![0., 0., 0., 0., 0., 0., 1., 0., 0., 2., 3., 0., 0., 0., 0., 0.]
    );
}

#[test]
fn inputs_at_a_model_size_and_resize_checks() {
    let d = load(&digits_spec()).unwrap();
    let x = d.inputs(Some((28, 28)), &d.test[..3]);
    assert_eq!(x.len(), 3 * 28 * 28);
    assert_eq!(d.inputs(None, &[0]), d.features[..64].to_vec());
    assert_eq!(d.inputs(Some((8, 8)), &[0]), d.features[..64].to_vec());
    assert_eq!(check_resize((8, 8), (28, 28), Resize::Bilinear), Ok(()));
    assert_eq!(check_resize((8, 8), (8, 8), Resize::None), Ok(()));
    assert!(check_resize((8, 8), (28, 28), Resize::None)
        .unwrap_err()
        .contains("`resize` is not set"));
    assert!(check_resize((8, 8), (6, 6), Resize::Pad)
        .unwrap_err()
        .contains("padding cannot shrink"));
    assert_eq!(
        d.describe_test(Some((28, 28))),
        "digits: test split, 359 of 1797 samples, 8x8x1 bilinear to 28x28"
    );
    assert_eq!(
        d.describe_test(None),
        "digits: test split, 359 of 1797 samples, 8x8x1"
    );
}

#[test]
fn csv_idx_and_npy_files_load_alike() {
    let dir = tempfile::tempdir().unwrap();
    // Six 2x2 images, labels 0/1 alternating; pixel values i*10+k.
    let labels: Vec<u8> = (0..6).map(|i| (i % 2) as u8).collect();
    let pixels: Vec<u8> = (0..6u8)
        .flat_map(|i| (0..4u8).map(move |k| i * 10 + k))
        .collect();
    let spec = |source| DataSpec {
        source,
        shape: Some([2, 2, 1]),
        scale: 1.0,
        test_fraction: 0.34,
        seed: 3,
        resize: Resize::None,
    };

    let mut text = String::from("p0,p1,p2,p3,label\n");
    for i in 0..6 {
        let row: Vec<String> = pixels[i * 4..i * 4 + 4]
            .iter()
            .map(|v| v.to_string())
            .collect();
        text.push_str(&format!("{},{}\n", row.join(","), labels[i]));
    }
    let csv_path = dir.path().join("d.csv");
    std::fs::write(&csv_path, &text).unwrap();
    let from_csv = load(&spec(DataSource::Csv {
        path: csv_path.clone(),
        label_column: LabelColumn::Last,
    }))
    .unwrap();

    idx::write_u8(&dir.path().join("x.idx"), &[6, 2, 2], &pixels).unwrap();
    idx::write_u8(&dir.path().join("y.idx"), &[6], &labels).unwrap();
    let from_idx = load(&spec(DataSource::Idx {
        images: dir.path().join("x.idx"),
        labels: dir.path().join("y.idx"),
    }))
    .unwrap();

    let xf: Vec<f32> = pixels.iter().map(|&v| v as f32).collect();
    npy::write(&dir.path().join("x.npy"), &[6, 4], npy::NpyData::F32(&xf)).unwrap();
    let yl: Vec<i64> = labels.iter().map(|&v| v as i64).collect();
    npy::write(&dir.path().join("y.npy"), &[6], npy::NpyData::I64(&yl)).unwrap();
    let from_npy = load(&spec(DataSource::Npy {
        features: dir.path().join("x.npy"),
        labels: dir.path().join("y.npy"),
    }))
    .unwrap();

    for d in [&from_csv, &from_idx, &from_npy] {
        assert_eq!(d.hwc, [2, 2, 1]);
        assert_eq!(d.features, xf);
        assert_eq!(d.labels, vec![0, 1, 0, 1, 0, 1]);
        assert_eq!(d.test.len(), 2, "one of each class");
    }
    assert_eq!(from_csv.sha256, from_npy.sha256, "same content, same key");

    // Gzipped files (as MNIST is distributed) are read by their `.gz` name.
    let gz = dir.path().join("x.idx.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, &std::fs::read(dir.path().join("x.idx")).unwrap()).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let from_gz = load(&spec(DataSource::Idx {
        images: gz,
        labels: dir.path().join("y.idx"),
    }))
    .unwrap();
    assert_eq!(from_gz.features, from_idx.features);

    // A ragged CSV, a label that is not a class number, a wrong shape.
    std::fs::write(&csv_path, "1,2,0\n1,2,3,1\n").unwrap();
    let err = load(&spec(DataSource::Csv {
        path: csv_path.clone(),
        label_column: LabelColumn::Last,
    }))
    .unwrap_err();
    assert!(
        err.reason.contains("error") || err.reason.contains("row 2"),
        "{err}"
    );
    std::fs::write(&csv_path, "1,2,3,4,0.5\n").unwrap();
    let err = load(&spec(DataSource::Csv {
        path: csv_path.clone(),
        label_column: LabelColumn::Last,
    }))
    .unwrap_err();
    assert!(err.reason.contains("not a class number"), "{err}");
    let err = load(&DataSpec {
        shape: Some([3, 3, 1]),
        ..spec(DataSource::Npy {
            features: dir.path().join("x.npy"),
            labels: dir.path().join("y.npy"),
        })
    })
    .unwrap_err();
    assert!(err.reason.contains("holds 9 values"), "{err}");
}

//! records.jsonl (or records.jsonl.zst) flattened to CSV, one row per neuron record of every
//! layer of every sample, for spreadsheets and data frames. The records are streamed, so runs
//! of any size convert in constant memory.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::path::Path;

use crate::audit::records_file::open_records;
use crate::audit::{DomainCheck, NeuronRecord, SampleRecord};
use crate::dtd::NoRoot;
use crate::error::{Error, Result};
use crate::io::AtomicFile;
use crate::region::{Decision, Membership};

/// The CSV header; every row has one field per column.
pub const HEADER: &str = "sample,explained,layer,neuron,relevance,has_root,no_root,valid,region,\
violated_layer,violated_neuron,margin,domain,domain_coordinate,domain_value,decided_by,on_face,\
judged";

/// A CSV field: quoted, with quotes doubled, when it holds a separator, a quote or a line break.
fn field(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(s)
    }
}

/// The spellings of records.jsonl.
fn no_root_name(reason: NoRoot) -> &'static str {
    match reason {
        NoRoot::ZeroRelevance => "zero-relevance",
        NoRoot::SmallDenominator => "small-denominator",
        NoRoot::NotApplicable => "not-applicable",
        NoRoot::NoValidRoot => "no-valid-root",
        NoRoot::Uncertified => "uncertified",
    }
}

/// One row of roots.csv: one neuron of one layer of one sample. A field that does not apply
/// (the verdict of a neuron without a root, the violated constraint of a root inside) is
/// `None`, an empty field in the CSV.
#[derive(Clone, Debug, PartialEq)]
pub struct RootRow {
    /// The input's row in the inputs file.
    pub sample: usize,
    /// The explained output.
    pub explained: usize,
    /// 1-based layer.
    pub layer: usize,
    /// The neuron's index in its layer.
    pub neuron: usize,
    /// The neuron's relevance `R_j`.
    pub relevance: f64,
    /// Whether the neuron has a root (judged or not).
    pub has_root: bool,
    /// Why it has none (`zero-relevance`, `small-denominator`, ...).
    pub no_root: Option<&'static str>,
    /// Inside the region and the domain.
    pub valid: Option<bool>,
    /// `inside` or `outside`.
    pub region: Option<&'static str>,
    /// The first violated constraint's layer (roots outside).
    pub violated_layer: Option<usize>,
    /// The first violated constraint's neuron (roots outside).
    pub violated_neuron: Option<usize>,
    /// `|σ z|` at the first violated constraint (roots outside).
    pub margin: Option<f64>,
    /// `in` or `out`.
    pub domain: Option<&'static str>,
    /// The first coordinate outside the domain.
    pub domain_coordinate: Option<usize>,
    /// The root's value there.
    pub domain_value: Option<f64>,
    /// Which arithmetic settled the verdict.
    pub decided_by: Option<&'static str>,
    /// Whether the root lies on a face of its region.
    pub on_face: Option<bool>,
    /// Whether the root was judged: `false` for a root the draw of `--roots-per-layer` left
    /// out (its verdict fields are then empty).
    pub judged: Option<bool>,
}

impl RootRow {
    /// The row of neuron `n` of layer `layer` in sample record `record`.
    pub fn new(record: &SampleRecord, layer: usize, n: &NeuronRecord) -> Self {
        let mut row = Self {
            sample: record.sample,
            explained: record.explained,
            layer,
            neuron: n.neuron,
            relevance: n.relevance,
            has_root: n.root.is_some() || n.not_judged,
            no_root: n.no_root.map(no_root_name),
            valid: None,
            region: None,
            violated_layer: None,
            violated_neuron: None,
            margin: None,
            domain: None,
            domain_coordinate: None,
            domain_value: None,
            decided_by: None,
            on_face: None,
            judged: (n.no_root.is_none()).then_some(!n.not_judged),
        };
        if let Some(root) = &n.root {
            row.valid = Some(root.valid);
            row.on_face = Some(root.region.on_face());
            match &root.region {
                Membership::Inside { .. } => row.region = Some("inside"),
                Membership::Outside {
                    layer,
                    neuron,
                    margin,
                } => {
                    row.region = Some("outside");
                    row.violated_layer = Some(*layer);
                    row.violated_neuron = Some(*neuron);
                    row.margin = Some(*margin);
                }
            }
            match &root.domain {
                DomainCheck::In => row.domain = Some("in"),
                DomainCheck::Out { coordinate, value } => {
                    row.domain = Some("out");
                    row.domain_coordinate = Some(*coordinate);
                    row.domain_value = Some(*value);
                }
            }
            row.decided_by = Some(Decision::name(root.decided_by));
        }
        row
    }

    /// The rows of one sample record, layer by layer, neuron by neuron.
    pub fn of_record(record: &SampleRecord) -> impl Iterator<Item = RootRow> + '_ {
        record
            .layers
            .iter()
            .flat_map(move |l| l.neurons.iter().map(move |n| Self::new(record, l.layer, n)))
    }

    /// Appends the row, as CSV with its line break, to `out`.
    fn write(&self, out: &mut String) {
        fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
            v.map_or_else(String::new, |v| v.to_string())
        }
        let _ = write!(
            out,
            "{},{},{},{},{}",
            self.sample, self.explained, self.layer, self.neuron, self.relevance
        );
        for v in [
            self.has_root.to_string(),
            opt(self.no_root),
            opt(self.valid),
            opt(self.region),
            opt(self.violated_layer),
            opt(self.violated_neuron),
            opt(self.margin),
            opt(self.domain),
            opt(self.domain_coordinate),
            opt(self.domain_value),
            opt(self.decided_by),
            opt(self.on_face),
            opt(self.judged),
        ] {
            out.push(',');
            out.push_str(&field(&v));
        }
        out.push('\n');
    }
}

/// Appends the rows of one sample to `out`; returns how many.
fn sample_rows(out: &mut String, record: &SampleRecord) -> u64 {
    let mut rows = 0;
    for row in RootRow::of_record(record) {
        row.write(out);
        rows += 1;
    }
    rows
}

/// Writes `out` as CSV from the records file at `records` (`.jsonl`, or `.jsonl.zst`
/// compressed), one row per neuron record of every layer of every sample, atomically. Returns
/// the number of rows (without the header).
pub fn roots_csv(records: &Path, out: &Path) -> Result<u64> {
    if let (Ok(a), Ok(b)) = (records.canonicalize(), out.canonicalize()) {
        if a == b {
            return Err(Error::Usage(format!(
                "{}: the CSV would overwrite the records it is made from",
                out.display()
            )));
        }
    }
    let input = open_records(records)?;
    let mut file = AtomicFile::create(out)?;
    writeln!(file, "{HEADER}").map_err(|e| Error::write(out, e))?;
    let mut rows = 0u64;
    let mut buf = String::new();
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| Error::file(records, format!("line {n}: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: SampleRecord = serde_json::from_str(&line)
            .map_err(|e| Error::file(records, format!("line {n}: {e}")))?;
        buf.clear();
        rows += sample_rows(&mut buf, &record);
        file.write_all(buf.as_bytes())
            .map_err(|e| Error::write(out, e))?;
    }
    file.commit()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{audit_sample, AuditSettings, DomainBox};
    use crate::dtd::DtdSettings;

    fn write_records(
        dir: &Path,
        settings: &AuditSettings,
    ) -> (std::path::PathBuf, Vec<SampleRecord>) {
        let model = crate::report::tests_support::tiny_model();
        let records: Vec<SampleRecord> = (0..9)
            .map(|i| {
                let x = vec![0.25 + 0.5 * i as f64, 1.5 - 0.3 * i as f64];
                audit_sample(&model, settings, i, &x, Some(0)).unwrap()
            })
            .collect();
        let path = dir.join("records.jsonl");
        let text: String = records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        std::fs::write(&path, text).unwrap();
        (path, records)
    }

    #[test]
    fn one_row_per_neuron_with_known_values() {
        let dir = tempfile::tempdir().unwrap();
        let settings = AuditSettings {
            certify: None,
            lp: Default::default(),
            dtd: DtdSettings::default(),
            domain: Some(DomainBox { lo: 0.0, hi: 1.0 }),
            exact: false,
            keep_points: false,
            records: Default::default(),
            compress: false,
            torch: None,
            root_sample: None,
        };
        let (records_path, records) = write_records(dir.path(), &settings);
        let out = dir.path().join("roots.csv");
        let rows = roots_csv(&records_path, &out).unwrap();
        let expected: usize = records
            .iter()
            .map(|r| r.layers.iter().map(|l| l.neurons.len()).sum::<usize>())
            .sum();
        assert_eq!(rows as usize, expected);
        assert_eq!(expected, 9 * (3 + 2));

        let text = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], HEADER);
        assert_eq!(
            lines[0],
            "sample,explained,layer,neuron,relevance,has_root,no_root,valid,region,violated_layer,\
             violated_neuron,margin,domain,domain_coordinate,domain_value,decided_by,on_face,judged"
        );
        assert_eq!(lines.len(), expected + 1);
        let columns = HEADER.split(',').count();
        for line in &lines {
            assert_eq!(line.split(',').count(), columns, "{line}");
        }

        // Rows follow the records in order, and values print the f64 the records hold. That is
        // the f64 serde_json reads back, which without its `float_roundtrip` feature may be one
        // ulp off the value written, so compare with the records as read from the file.
        let records: Vec<SampleRecord> = std::fs::read_to_string(&records_path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let neurons = records
            .iter()
            .flat_map(|r| r.layers.iter().map(move |l| (r, l)))
            .flat_map(|(r, l)| l.neurons.iter().map(move |n| (r, l, n)));
        let mut seen_outside = false;
        let mut seen_out_of_domain = false;
        for ((r, l, n), line) in neurons.zip(&lines[1..]) {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f[0].parse::<usize>().unwrap(), r.sample);
            assert_eq!(f[2].parse::<usize>().unwrap(), l.layer);
            assert_eq!(f[3].parse::<usize>().unwrap(), n.neuron);
            assert_eq!(
                f[4].parse::<f64>().unwrap().to_bits(),
                n.relevance.to_bits()
            );
            assert_eq!(f[5], n.root.is_some().to_string());
            match &n.root {
                None => {
                    let expected = serde_json::to_value(n.no_root.unwrap()).unwrap();
                    assert_eq!(f[6], expected.as_str().unwrap());
                    assert!(f[7..].iter().all(|v| v.is_empty()));
                }
                Some(root) => {
                    assert_eq!(f[6], "");
                    assert_eq!(f[7], root.valid.to_string());
                    if let Membership::Outside { margin, .. } = root.region {
                        seen_outside = true;
                        assert_eq!(f[8], "outside");
                        assert_eq!(f[11].parse::<f64>().unwrap().to_bits(), margin.to_bits());
                    }
                    if let DomainCheck::Out { value, .. } = root.domain {
                        seen_out_of_domain = true;
                        assert_eq!(f[12], "out");
                        assert_eq!(f[14].parse::<f64>().unwrap().to_bits(), value.to_bits());
                    }
                    let expected = serde_json::to_value(root.decided_by).unwrap();
                    assert_eq!(f[15], expected.as_str().unwrap());
                }
            }
        }
        assert!(
            seen_outside && seen_out_of_domain,
            "the fixture covers both verdicts"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 2, "{leftovers:?}");
    }

    #[test]
    fn known_values_print_exactly() {
        use crate::audit::RootVerdict;
        use crate::dtd::Rule;
        let root = |region, domain, decided_by| RootVerdict {
            valid: false,
            region,
            domain,
            decided_by,
            point: None,
        };
        let record = SampleRecord {
            sample: 3,
            explained: 1,
            output: 2.5,
            pattern_decided_by: Decision::Float,
            layers: vec![crate::audit::LayerRecord {
                layer: 1,
                rule: Rule::ZPlus,
                relevance_in: 1.0,
                relevance_out: 1.0,
                unresolved: 0.0,
                no_root_relevance: 0.0,
                absorbed: 0.0,
                conservation_error: 0.0,
                roots_available: None,
                roots_judged: None,
                neurons: vec![
                    NeuronRecord {
                        neuron: 0,
                        relevance: 0.1,
                        no_root: None,
                        root: Some(root(
                            Membership::Outside {
                                layer: 2,
                                neuron: 1,
                                margin: -1.5e-7,
                            },
                            DomainCheck::Out {
                                coordinate: 1,
                                value: -0.25,
                            },
                            Decision::ExactFallback,
                        )),
                        certified: None,
                        not_judged: false,
                    },
                    NeuronRecord {
                        neuron: 1,
                        relevance: 0.0,
                        no_root: Some(NoRoot::ZeroRelevance),
                        root: None,
                        certified: None,
                        not_judged: false,
                    },
                    NeuronRecord {
                        neuron: 2,
                        relevance: 0.9,
                        no_root: None,
                        root: Some(RootVerdict {
                            valid: true,
                            ..root(
                                Membership::Inside { slack: Some(0.0) },
                                DomainCheck::In,
                                Decision::Float,
                            )
                        }),
                        certified: None,
                        not_judged: false,
                    },
                    // A root the draw of --roots-per-layer left out.
                    NeuronRecord {
                        neuron: 3,
                        relevance: 0.5,
                        no_root: None,
                        root: None,
                        certified: None,
                        not_judged: true,
                    },
                ],
            }],
        };
        let dir = tempfile::tempdir().unwrap();
        let records = dir.path().join("records.jsonl");
        std::fs::write(&records, serde_json::to_string(&record).unwrap() + "\n\n").unwrap();
        let out = dir.path().join("roots.csv");
        assert_eq!(roots_csv(&records, &out).unwrap(), 4);
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            text,
            format!(
                "{HEADER}\n\
                 3,1,1,0,0.1,true,,false,outside,2,1,-0.00000015,out,1,-0.25,exact-fallback,false,true\n\
                 3,1,1,1,0,false,zero-relevance,,,,,,,,,,,\n\
                 3,1,1,2,0.9,true,,true,inside,,,,in,,,float,true,true\n\
                 3,1,1,3,0.5,true,,,,,,,,,,,,false\n"
            )
        );
    }

    #[test]
    fn names_match_the_records() {
        for r in [
            NoRoot::ZeroRelevance,
            NoRoot::SmallDenominator,
            NoRoot::NotApplicable,
            NoRoot::NoValidRoot,
            NoRoot::Uncertified,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), no_root_name(r));
        }
        for d in [
            Decision::Float,
            Decision::ExactFallback,
            Decision::Exact,
            Decision::Unchecked,
        ] {
            assert_eq!(serde_json::to_value(d).unwrap(), Decision::name(d));
        }
    }

    #[test]
    fn field_quotes_only_when_needed() {
        assert_eq!(field("1.5"), "1.5");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn a_bad_line_names_the_file_and_line_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let settings = AuditSettings::default();
        let (records_path, _) = write_records(dir.path(), &settings);
        let mut text = std::fs::read_to_string(&records_path).unwrap();
        text.push_str("{\"sample\": 9}\n");
        std::fs::write(&records_path, text).unwrap();
        let out = dir.path().join("roots.csv");
        let err = roots_csv(&records_path, &out).unwrap_err().to_string();
        assert!(
            err.contains("records.jsonl") && err.contains("line 10:"),
            "{err}"
        );
        assert!(!out.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

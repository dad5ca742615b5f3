//! Regression: a relative report `template:` is resolved against the spec's folder by
//! `plan` (which hashes it) and must be resolved the same way when the stage runs,
//! whatever the current directory (it used to be read from the current directory, so a
//! valid spec failed from elsewhere after every model stage had run).

mod common;

use steerbench::exec::{
    ProgressBoard, Registry, RunOptions, StageContext, StageOutputs, StageRunner,
};
use steerbench::spec::{StageKind, StageSpec};

/// A report stage that reads its template the way the real one resolves it.
struct ReadsTemplate;

impl StageRunner<()> for ReadsTemplate {
    fn version(&self) -> u32 {
        1
    }
    fn run(&self, ctx: &StageContext<'_, ()>) -> anyhow::Result<StageOutputs> {
        let StageSpec::Report(p) = ctx.params() else {
            anyhow::bail!("not a report stage")
        };
        let t = p.template.as_deref().expect("the spec names a template");
        let text = std::fs::read_to_string(ctx.spec_path(t))?;
        std::fs::write(ctx.out_dir().join("report.md"), text)?;
        Ok(StageOutputs::default())
    }
}

#[test]
fn relative_template_is_read_from_the_spec_folder_not_the_current_directory() {
    let spec = common::SPEC.replace(
        "report: { report: { inputs: [effect, damage] } }",
        "report: { report: { inputs: [effect, damage], template: templates/mine.md.j2 } }",
    );
    let ws = common::Workspace::new(&spec);
    std::fs::create_dir_all(ws.dir.path().join("templates")).unwrap();
    std::fs::write(
        ws.dir.path().join("templates/mine.md.j2"),
        "# {{ title }}\n",
    )
    .unwrap();
    // The test process runs in the package root, not in the spec's folder.
    assert_ne!(std::env::current_dir().unwrap(), ws.dir.path());
    assert!(!std::path::Path::new("templates/mine.md.j2").exists());

    let plan = ws.plan(1);
    let mut registry: Registry<()> = common::registry(1);
    registry.register(StageKind::Report, ReadsTemplate);
    let opts = RunOptions {
        shards: 1,
        runs_dir: ws.runs(),
        wait: false,
        progress: ProgressBoard::hidden(),
    };
    let report =
        steerbench::exec::execute(&plan, &registry, &(), &opts).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.executed.contains(&"report".to_string()));
    let dir = std::fs::read_dir(report.run_dir.join("report"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("manifest.json").exists())
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("report.md")).unwrap(),
        "# {{ title }}\n"
    );
}

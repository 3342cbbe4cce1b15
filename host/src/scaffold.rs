//! `tether new --lang LANG DIR`: a new handler project in one of the guest languages, with the
//! language's SDK, the WIT world, and a manifest whose `[route.build]` makes the component, so
//! that `tether build` and `tether serve` answer a request. The files are the templates in
//! `host/templates/` and the SDKs in `guest/sdk/`, compiled into the binary.

use anyhow::Context as _;
use clap::ValueEnum as _;
use std::path::{Path, PathBuf};

/// The languages a project can be created in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Js,
    Python,
    C,
}

/// One file of a new project: where it goes, and its text (with `{{...}}` placeholders).
struct File {
    path: &'static str,
    text: &'static str,
}

const WIT: File = File { path: "wit/tether.wit", text: include_str!("../../wit/tether.wit") };

/// What a language's project consists of and how it is built.
struct Template {
    /// The files, the SDK's included.
    files: &'static [File],
    /// The component the build makes, relative to the project.
    component: &'static str,
    /// The build command (`sh -c`, in the project).
    command: &'static str,
    /// What the build needs on `PATH`, for the manifest's comment.
    toolchain: &'static str,
}

fn template(lang: Lang) -> Template {
    match lang {
        Lang::Rust => Template {
            files: &[
                File { path: "Cargo.toml", text: include_str!("../templates/rust/Cargo.toml") },
                File { path: "src/lib.rs", text: include_str!("../templates/rust/src/lib.rs") },
            ],
            component: "target/wasm32-wasip2/release/{{crate}}.wasm",
            command: "cargo build --release --target wasm32-wasip2",
            toolchain: "cargo with the wasm32-wasip2 target (rustup target add wasm32-wasip2)",
        },
        Lang::Js => Template {
            files: &[
                File { path: "handler.js", text: include_str!("../templates/js/handler.js") },
                File { path: "tether.js", text: include_str!("../../guest/sdk/js/tether.js") },
                File { path: "tether.d.ts", text: include_str!("../../guest/sdk/js/tether.d.ts") },
            ],
            component: "handler.wasm",
            command: "componentize-js --wit wit -n handler -d http -d fetch-event -o handler.wasm handler.js",
            toolchain: "componentize-js (npm @bytecodealliance/componentize-js 0.23.0; Tether's scripts/setup-langs js)",
        },
        Lang::Python => Template {
            files: &[
                File { path: "app.py", text: include_str!("../templates/python/app.py") },
                File { path: "tether/__init__.py", text: include_str!("../../guest/sdk/python/tether/__init__.py") },
                File { path: "tether/_errors.py", text: include_str!("../../guest/sdk/python/tether/_errors.py") },
                File { path: "tether/request.py", text: include_str!("../../guest/sdk/python/tether/request.py") },
                File { path: "tether/response.py", text: include_str!("../../guest/sdk/python/tether/response.py") },
                File { path: "tether/py.typed", text: include_str!("../../guest/sdk/python/tether/py.typed") },
            ],
            component: "handler.wasm",
            command: "componentize-py -d wit -w handler componentize -p . app -o handler.wasm",
            toolchain: "componentize-py (PyPI componentize-py 0.25.1; Tether's scripts/setup-langs python)",
        },
        Lang::C => Template {
            files: &[
                File { path: "handler.c", text: include_str!("../templates/c/handler.c") },
                File { path: "tether.h", text: include_str!("../../guest/sdk/c/tether.h") },
                File { path: "tether.c", text: include_str!("../../guest/sdk/c/tether.c") },
            ],
            component: "handler.wasm",
            command: "componentize-c bindings wit handler bindings && \
                      clang-14 --target=wasm32-wasi -mexec-model=reactor -O2 -I bindings -I . -o handler.core.wasm \
                      handler.c tether.c bindings/handler.c bindings/handler_component_type.o && \
                      componentize-c component handler.core.wasm handler.wasm",
            toolchain: "clang-14, lld-14 and wasi-libc (Debian) and componentize-c (Tether's scripts/setup-langs c)",
        },
    }
}

/// The name a project directory gives its package: its file name, or `handler`.
fn project_name(dir: &Path) -> String {
    let name = dir.file_name().and_then(|name| name.to_str()).unwrap_or("handler");
    let name: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    if name.starts_with(|c: char| c.is_ascii_alphabetic()) { name } else { format!("handler-{name}") }
}

/// Creates the project of `lang` in `dir`, which must not exist or be empty, and returns the
/// files written.
pub fn create(lang: Lang, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        anyhow::ensure!(entries.next().is_none(), "{} exists and is not empty", dir.display());
    }
    let name = project_name(dir);
    let template = template(lang);
    let rust_sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest");
    let component = template.component.replace("{{crate}}", &name.replace('-', "_"));
    let lang_name = lang.to_possible_value().map(|value| value.get_name().to_owned()).unwrap_or_default();
    let fill = |text: &str| {
        text.replace("{{name}}", &name)
            .replace("{{rust_sdk}}", &rust_sdk.display().to_string())
            .replace("{{lang}}", &lang_name)
            .replace("{{component}}", &component)
            .replace("{{command}}", template.command)
            .replace("{{toolchain}}", template.toolchain)
    };
    let manifest = File { path: "tether.toml", text: include_str!("../templates/tether.toml") };
    let mut written = Vec::new();
    for file in template.files.iter().chain([&WIT, &manifest]) {
        let path = dir.join(file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, fill(file.text)).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_are_package_names() {
        for (dir, name) in [("shop", "shop"), ("my shop", "my-shop"), ("2fa", "handler-2fa"), ("/", "handler")] {
            assert_eq!(project_name(Path::new(dir)), name, "{dir}");
        }
    }
}

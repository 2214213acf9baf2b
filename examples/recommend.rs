//! Serves one request from an index and prints it as one JSON object.
//!
//! ```text
//! cargo run --release --example recommend -- --index target/music-index --listening trk-00042 --k 10
//! ```
//!
//! Output ([`twostage::Recommendations::to_json`], the same body `serve` answers with):
//! `{"items":[{"id":...,"score":...,"sources":{"ann":{"rank":0,"score":0.93}}},...],"candidates":...,"timings_us":{"total":...,...}}`.
//! On bad input it prints the error to stderr and exits with status 1 (2 for bad arguments).

use std::path::PathBuf;

use anyhow::Result;
use clap::{ArgGroup, Parser};
use twostage::{Context, Engine, Request};

/// Ask an index for recommendations.
#[derive(Parser)]
#[command(group(ArgGroup::new("context").required(true).multiple(true).args(["search", "listening", "history"])))]
struct Args {
    /// Index directory.
    #[arg(long)]
    index: PathBuf,
    /// Search text (combine with --history for a personalised search).
    #[arg(long)]
    search: Option<String>,
    /// Id of the item currently being listened to.
    #[arg(long, conflicts_with_all = ["search", "history"])]
    listening: Option<String>,
    /// Recent item ids, oldest first, comma separated.
    #[arg(long, value_delimiter = ',')]
    history: Option<Vec<String>>,
    /// Number of items.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Item ids never to return, comma separated.
    #[arg(long, value_delimiter = ',')]
    exclude: Vec<String>,
    /// Only items with this tag, as FIELD=VALUE (repeatable).
    #[arg(long, value_parser = parse_tag)]
    tag: Vec<(String, String)>,
    /// Include the ranker's feature values.
    #[arg(long)]
    explain: bool,
    /// Stored fields to return with each item, comma separated (empty: none).
    #[arg(long, value_delimiter = ',', default_value = "title")]
    fields: Vec<String>,
    /// The sentence-encoder model the index was built with (searches on an
    /// index with a content space need it).
    #[arg(long)]
    model: Option<PathBuf>,
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(f, v)| (f.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}` is not FIELD=VALUE"))
}

fn main() {
    let args = Args::parse();
    match run(args) {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// The request's context from the context arguments (clap has already
/// refused the combinations that make no sense).
fn context(search: Option<String>, listening: Option<String>, history: Option<Vec<String>>) -> Result<Context> {
    Ok(match (search, listening, history) {
        (Some(text), None, Some(history)) => Context::personalized_search(text, history),
        (Some(text), None, None) => Context::search(text),
        (None, Some(item), None) => Context::listening(item),
        (None, None, Some(history)) => Context::history(history),
        _ => anyhow::bail!("give one of --search, --listening or --history (--search may be combined with --history)"),
    })
}

fn run(args: Args) -> Result<String> {
    let context = context(args.search, args.listening, args.history)?;
    let encoder = args.model.as_ref().map(twostage::Encoder::load).transpose()?;
    let engine = Engine::open_with_encoder(&args.index, encoder.as_ref())?;
    let fields = args.fields.into_iter().filter(|f| !f.is_empty());
    let mut request = Request::new(context)
        .k(args.k)
        .exclude(args.exclude)
        .explain(args.explain)
        .fields(fields);
    for (field, value) in args.tag {
        request = request.require_tag(field, value);
    }
    let recs = engine.recommend(&request)?;
    Ok(recs.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(context_args: &[&str]) -> Result<Context> {
        let argv = ["recommend", "--index", "idx"].into_iter().chain(context_args.iter().copied());
        let args = Args::try_parse_from(argv)?;
        context(args.search, args.listening, args.history)
    }

    fn refusal(context_args: &[&str]) -> ErrorKind {
        let err = parse(context_args).unwrap_err();
        err.downcast_ref::<clap::Error>()
            .map(clap::Error::kind)
            .unwrap_or_else(|| panic!("not a clap error: {err}"))
    }

    #[test]
    fn search_combines_with_history_and_listening_stands_alone() {
        let personalised = parse(&["--search", "late night jazz", "--history", "a,b"]).unwrap();
        assert_eq!(personalised, Context::personalized_search("late night jazz", ["a", "b"]));
        assert_eq!(parse(&["--search", "jazz"]).unwrap(), Context::search("jazz"));
        assert_eq!(parse(&["--history", "a,b"]).unwrap(), Context::history(["a", "b"]));
        assert_eq!(parse(&["--listening", "a"]).unwrap(), Context::listening("a"));
        assert_eq!(refusal(&["--listening", "a", "--search", "jazz"]), ErrorKind::ArgumentConflict);
        assert_eq!(refusal(&["--listening", "a", "--history", "b"]), ErrorKind::ArgumentConflict);
        assert_eq!(refusal(&[]), ErrorKind::MissingRequiredArgument);
    }
}

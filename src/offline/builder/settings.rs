//! The builder's settings: what a caller sets before a build, each
//! setter documenting its default, and the getters that read them back.

use std::time::Duration;

use super::IndexBuilder;
use crate::encoder::Encoder;
use crate::index::embeddings::EmbeddingParams;
use crate::index::{BuildParams, Vectors};
use crate::ranking::train::TrainParams;
use crate::retrieval::ann::{AnnParams, Metric};
use crate::retrieval::covisit::CovisitParams;
use crate::retrieval::linear::LinearParams;
use crate::schema::Schema;

impl IndexBuilder {
    /// A builder with every default: schema inferred from the catalog
    /// ([`Schema::infer`]), [`BuildParams::default`] (each parameter struct
    /// documents its defaults on its fields), and an MLP ranker
    /// ([`TrainParams::default`]) trained on the most recent 15% of the events (which builds
    /// retrieval a second time, over the older 85%, in a temporary directory:
    /// roughly doubles build time; [`IndexBuilder::without_ranker_training`]
    /// skips it). Without the crate feature `train` (on by default) the
    /// default is the fixed-weight ranker, and asking for training
    /// ([`IndexBuilder::ranker`]) makes the build fail with
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig).
    pub fn new() -> IndexBuilder {
        IndexBuilder::default()
    }

    /// Use this schema instead of inferring one.
    pub fn schema(mut self, schema: Schema) -> IndexBuilder {
        self.schema = Some(schema);
        self
    }

    /// Treat equal values of text attribute `attribute` as one group
    /// ("same artist"). Applies on top of an inferred or given schema.
    pub fn group_key(mut self, attribute: impl Into<String>) -> IndexBuilder {
        self.group_key = Some(attribute.into());
        self
    }

    /// Embedding parameters (default: [`EmbeddingParams::default`]).
    pub fn embedding(mut self, params: EmbeddingParams) -> IndexBuilder {
        self.params.embedding = params;
        self
    }

    /// HNSW parameters (default: [`AnnParams::default`]).
    pub fn ann(mut self, params: AnnParams) -> IndexBuilder {
        self.params.ann = params;
        self
    }

    /// Distance for ANN and similarity features (default cosine).
    pub fn metric(mut self, metric: Metric) -> IndexBuilder {
        self.params.metric = metric;
        self
    }

    /// Co-visitation parameters (default: [`CovisitParams::default`]).
    pub fn covisit(mut self, params: CovisitParams) -> IndexBuilder {
        self.params.covisit = params;
        self
    }

    /// Linear item-item (EASE) parameters (default: [`LinearParams::default`]).
    pub fn linear(mut self, params: LinearParams) -> IndexBuilder {
        self.params.linear = params;
        self
    }

    /// The parameters this builder will build with.
    pub fn build_params(&self) -> &BuildParams {
        &self.params
    }

    /// Train the ranker with these settings (default: [`TrainParams::default`],
    /// an MLP). Training runs when the events hold enough plays or searches.
    pub fn ranker(mut self, params: TrainParams) -> IndexBuilder {
        self.train = Some(params);
        self
    }

    /// The ranker's training settings, `None` after
    /// [`IndexBuilder::without_ranker_training`].
    pub fn ranker_params(&self) -> Option<&TrainParams> {
        self.train.as_ref()
    }

    /// Embed every item's text with `encoder` into a content space searched
    /// beside the learned one ([`Retriever::Content`](crate::Retriever::Content)):
    /// searches then match by meaning, and items without plays get
    /// neighbours. The manifest records the model; an engine must attach the
    /// same one ([`Engine::with_encoder`](crate::Engine::with_encoder)) to serve searches. Without an
    /// encoder (the default) the index has no content space.
    pub fn encoder(mut self, encoder: Encoder) -> IndexBuilder {
        self.encoder = Some(encoder);
        self
    }

    /// The sentence encoder set by [`IndexBuilder::encoder`], if any: the
    /// one an engine opened on this builder's index must attach.
    pub fn content_encoder(&self) -> Option<&Encoder> {
        self.encoder.as_ref()
    }

    /// Keep the fixed-weight placeholder ranker; no training.
    pub fn without_ranker_training(mut self) -> IndexBuilder {
        self.train = None;
        self
    }

    /// Inactivity gap that ends a session (default 30 minutes).
    pub fn session_gap(mut self, gap: Duration) -> IndexBuilder {
        self.params.session_gap_secs = i64::try_from(gap.as_secs()).unwrap_or(i64::MAX);
        self
    }

    /// Where the ANN space's vectors come from (default [`Vectors::Auto`]:
    /// the catalog's when every item carries one, learned from the log when
    /// none does, and an error naming the first item without one otherwise).
    pub fn vectors(mut self, policy: Vectors) -> IndexBuilder {
        self.params.vectors = policy;
        self
    }
}

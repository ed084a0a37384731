//! Zarr groups in a directory: v3 `zarr.json` with `node_type` "group", or v2 `.zgroup` (with
//! `.zattrs`). Metadata and the listing of members come from zarrs' `Group` over zuring's store;
//! members open as [`ZarrArray`]s or [`ZarrGroup`]s sharing the group's context.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};
use zarrs::group::Group;
use zarrs::node::NodeMetadata;
use zuring_zarrs::UringStore;

use crate::array::{zarrs_error, ZarrArray};
use crate::context::Context;
use crate::error::{ArrayError, Result};

/// What a member of a group is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// An array.
    Array,
    /// A group.
    Group,
}

/// An open Zarr group.
#[derive(Debug)]
pub struct ZarrGroup {
    path: PathBuf,
    group: Group<UringStore>,
    ctx: Arc<Context>,
}

fn metadata_error(path: &Path, message: String) -> ArrayError {
    ArrayError::Metadata {
        path: path.to_path_buf(),
        message,
    }
}

impl ZarrGroup {
    /// Open the group in directory `path` with the shared context.
    ///
    /// # Errors
    /// [`ArrayError::GroupNotFound`] when there is no group metadata; [`ArrayError::Metadata`]
    /// when it is malformed or describes an array.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, Context::shared()?)
    }

    /// Open with an explicit context.
    ///
    /// # Errors
    /// As [`ZarrGroup::open`].
    pub fn open_with(path: impl AsRef<Path>, ctx: Arc<Context>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Ok(text) = std::fs::read(path.join("zarr.json")) {
            let value: Value = serde_json::from_slice(&text)
                .map_err(|e| metadata_error(&path, format!("zarr.json is not valid JSON: {e}")))?;
            match value.get("node_type").and_then(Value::as_str) {
                Some("group") => {}
                Some(other) => {
                    return Err(metadata_error(
                        &path,
                        format!("zarr.json: node_type is \"{other}\", not \"group\""),
                    ))
                }
                None => {
                    return Err(metadata_error(
                        &path,
                        "zarr.json: required member \"node_type\" is missing".into(),
                    ))
                }
            }
            if value.get("attributes").is_some_and(|a| !a.is_object()) {
                return Err(metadata_error(
                    &path,
                    "zarr.json: \"attributes\" must be a JSON object".into(),
                ));
            }
        } else if !path.join(".zgroup").is_file() {
            return Err(ArrayError::GroupNotFound { path });
        }
        let store = Arc::new(
            UringStore::with_reader(&path, Arc::clone(&ctx.reader))
                .map_err(|e| zarrs_error(&path, e))?,
        );
        let group = Group::open(store, "/").map_err(|e| metadata_error(&path, e.to_string()))?;
        Ok(Self { path, group, ctx })
    }

    /// Create a Zarr v3 group in directory `path` (made if missing) with `attributes`: its
    /// `zarr.json` is written atomically.
    ///
    /// # Errors
    /// IO errors naming the file.
    pub fn create(path: impl AsRef<Path>, attributes: Map<String, Value>) -> Result<Self> {
        let path = path.as_ref();
        let metadata = serde_json::json!({
            "zarr_format": 3,
            "node_type": "group",
            "attributes": attributes,
        });
        let text = serde_json::to_vec_pretty(&metadata)
            .map_err(|e| metadata_error(path, e.to_string()))?;
        zuring_io::write_atomic(&path.join("zarr.json"), &text, false)?;
        Self::open(path)
    }

    /// The group's directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// 2 or 3.
    #[must_use]
    pub fn zarr_format(&self) -> u8 {
        match self.group.metadata() {
            zarrs::metadata::GroupMetadata::V2(_) => 2,
            zarrs::metadata::GroupMetadata::V3(_) => 3,
        }
    }

    /// The group's attributes.
    #[must_use]
    pub fn attributes(&self) -> &Map<String, Value> {
        self.group.attributes()
    }

    /// The direct members (arrays and groups, v3 or v2), sorted by name.
    ///
    /// # Errors
    /// [`ArrayError::Metadata`] naming the group when a member's metadata cannot be read.
    pub fn members(&self) -> Result<Vec<(String, NodeKind)>> {
        let children = self
            .group
            .children(false)
            .map_err(|e| metadata_error(&self.path, e.to_string()))?;
        let mut members: Vec<(String, NodeKind)> = children
            .into_iter()
            .map(|node| {
                let name = node
                    .path()
                    .as_str()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let kind = match node.metadata() {
                    NodeMetadata::Array(_) => NodeKind::Array,
                    NodeMetadata::Group(_) => NodeKind::Group,
                };
                (name, kind)
            })
            .collect();
        members.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(members)
    }

    /// The directory of member `name` (a relative path, `/`-separated for nested members).
    fn member_path(&self, name: &str) -> Result<PathBuf> {
        let relative = Path::new(name);
        let ok = !name.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if ok {
            Ok(self.path.join(relative))
        } else {
            Err(ArrayError::selection(format!(
                "member name {name:?} is not a relative path inside the group"
            )))
        }
    }

    /// Open the array `name` (nested: `"a/b"`) with the group's context.
    ///
    /// # Errors
    /// As [`ZarrArray::open`]; a name leaving the group is a selection error.
    pub fn open_array(&self, name: &str) -> Result<ZarrArray> {
        ZarrArray::open_with(self.member_path(name)?, Arc::clone(&self.ctx))
    }

    /// Open the group `name` (nested: `"a/b"`) with the group's context.
    ///
    /// # Errors
    /// As [`ZarrGroup::open`]; a name leaving the group is a selection error.
    pub fn open_group(&self, name: &str) -> Result<ZarrGroup> {
        ZarrGroup::open_with(self.member_path(name)?, Arc::clone(&self.ctx))
    }
}

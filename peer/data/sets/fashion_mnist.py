"""Fashion-MNIST (Xiao et al. 2017): 60,000 + 10,000 Zalando article images, 28x28
grayscale, 10 classes, in MNIST's four-file IDX layout with the same file names (Debian's
``dataset-fashion-mnist`` installs them gzipped under /usr/share/datasets/fashion-mnist).

Normalisation: the usual training-set mean and std, 0.2860 and 0.3530.
"""

from peer.data.idx import IdxDataset
from peer.data.spec import register

FASHION_MNIST = register("fashion_mnist", IdxDataset(subdir="FashionMNIST", mean=0.2860, std=0.3530))

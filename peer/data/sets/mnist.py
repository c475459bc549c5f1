"""MNIST (LeCun et al. 1998): 60,000 + 10,000 handwritten digits, 28x28 grayscale, 10
classes, as the four IDX files (``data/mnist/`` ships them gzipped).

Normalisation: the usual torchvision-example training-set mean and std, 0.1307 and 0.3081.
"""

from peer.data.idx import IdxDataset
from peer.data.spec import register

MNIST = register("mnist", IdxDataset(subdir="MNIST", mean=0.1307, std=0.3081))

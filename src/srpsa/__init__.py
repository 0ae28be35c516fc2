"""srpsa: particle size analysis of round particles from optical microscope images.

Pipeline (paper: Patil et al., "Multi-Modal Super Resolution for Dense Microscopic Particle Size
Estimation"): OM image -> Pix2Pix translation to SEM-like -> ESRGAN super-resolution -> SR-PSA circle
detector -> particle size distribution.

Coordinate convention used everywhere: a circle is (x, y, r) in pixels, x = column, y = row, and the
centre of pixel (row i, column j) is at (x=j, y=i); pixel (i, j) covers [j-0.5, j+0.5] x [i-0.5, i+0.5].
"""

__version__ = "0.1.0"

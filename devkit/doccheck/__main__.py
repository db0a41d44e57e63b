import sys

from devkit.doccheck import main

sys.exit(main(sys.argv[1:]))

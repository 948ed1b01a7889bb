"""`python -m targets.bank.gateway --port P --bank-api URL --kafka HOST:PORT --namespace NS`."""

import sys

from targets.bank.gateway.server import main

sys.exit(main())

from vot.cli import main

raise SystemExit(main())

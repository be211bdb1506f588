from genloom.cli import main

raise SystemExit(main())

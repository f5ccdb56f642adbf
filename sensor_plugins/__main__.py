from sensor_plugins.cli import main

raise SystemExit(main())

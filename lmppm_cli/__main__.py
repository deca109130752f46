from lmppm_cli.cli import main

main()

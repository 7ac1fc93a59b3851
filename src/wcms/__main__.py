from wcms.cli.main import main

main()

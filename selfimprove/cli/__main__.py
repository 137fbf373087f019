from selfimprove.cli.app import main

main()

from mlmon.launcher import main

main()

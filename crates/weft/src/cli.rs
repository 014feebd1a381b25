//! Command-line definitions (clap). Values that need domain parsing
//! (multiaddrs, addresses) are taken as strings and checked by the node's
//! config code, so every mistake is reported on one line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "weft",
    version,
    about = "weft: a peer-to-peer node. Share files, serve content, send payments and run apps with no server in between.",
    after_help = "Examples:
  weft start                          run a node with the default data dir
  weft --data-dir ./a start --api 127.0.0.1:0 --listen /ip4/127.0.0.1/tcp/0
  weft id                             this node's peer id and addresses
  weft peers --json                   connected peers as JSON
  weft dial /ip4/192.0.2.7/udp/4719/quic-v1/p2p/12D3KooW...
  weft devnet --nodes 5               five connected nodes on this machine

The CLI finds a running node through its data dir (--data-dir or WEFT_DATA_DIR),
or through --api URL (WEFT_API) with --token (WEFT_TOKEN)."
)]
pub(crate) struct Cli {
    /// Data directory [env: WEFT_DATA_DIR; default: the platform's data dir]
    #[arg(
        long,
        global = true,
        env = "WEFT_DATA_DIR",
        value_name = "DIR",
        hide_env = true
    )]
    pub(crate) data_dir: Option<PathBuf>,

    /// API address: where `start` serves it (HOST:PORT, port 0 picks one),
    /// and where other commands reach it (URL or HOST:PORT)
    #[arg(long, global = true, env = "WEFT_API", value_name = "ADDR")]
    pub(crate) api: Option<String>,

    /// API token, when the node is reached with --api (default: the data dir's api.token)
    #[arg(
        long,
        global = true,
        env = "WEFT_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,

    /// Print the API's JSON instead of text
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// More logging (-v debug, -vv trace); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the node (the daemon) until Ctrl-C or SIGTERM
    #[command(after_help = "Examples:
  weft start
  weft start --no-mdns --listen /ip4/0.0.0.0/udp/4719/quic-v1 \\
      --bootstrap /ip4/192.0.2.7/udp/4719/quic-v1/p2p/12D3KooW...
  weft --data-dir /tmp/b start --api 127.0.0.1:0 --listen /ip4/127.0.0.1/tcp/0 --network test
  weft start --genesis genesis.json --mine --miner weft1...

Every option can also be set in weft.toml in the data dir, e.g.
  listen = [\"/ip4/0.0.0.0/tcp/4719\"]
  bootstrap = [\"/ip4/192.0.2.7/tcp/4719/p2p/12D3KooW...\"]
  mdns = false
  network = \"main\"
  max_peers = 64
  genesis = \"/path/to/genesis.json\"
  mine = true
Flags beat environment variables, which beat weft.toml, which beats the defaults.")]
    Start(StartArgs),

    /// Print this node's peer id and listen addresses
    #[command(after_help = "Examples:
  weft id
  weft id --json | jq -r .peer_id")]
    Id,

    /// List connected peers
    #[command(after_help = "Examples:
  weft peers
  weft peers --json | jq -r '.[].peer_id'")]
    Peers,

    /// Connect to a peer by multiaddr
    #[command(after_help = "Examples:
  weft dial /ip4/127.0.0.1/tcp/4719/p2p/12D3KooW...
  weft dial /ip4/192.0.2.7/udp/4719/quic-v1")]
    Dial {
        /// The peer's address, ideally ending in /p2p/<peer id>
        multiaddr: String,
    },

    /// Disconnect from a peer
    #[command(after_help = "Example:
  weft disconnect 12D3KooW...")]
    Disconnect {
        /// The peer id
        peer_id: String,
    },

    /// Show peer count, DHT size and uptime
    #[command(after_help = "Examples:
  weft status
  weft status --json")]
    Status,

    /// Share a file or folder: prints its hash and a ticket to hand out
    #[command(after_help = "Examples:
  weft share ./holiday.mp4
  weft share ./dataset/            a folder becomes a collection
  weft share big.iso --json        {\"hash\": ..., \"ticket\": ..., \"size\": ...}")]
    Share {
        /// The file or folder
        path: PathBuf,
    },

    /// Fetch content by ticket or hash from every peer that has it
    #[command(after_help = "Examples:
  weft get weft1abc...                    into ./<hash>
  weft get weft1abc... -o ~/movie.mp4
  weft get 5f2b...e1 -o ./dataset          a bare hash: providers come from the DHT
Run it again after an interruption: it resumes and fetches only what is missing.")]
    Get {
        /// A ticket (weft1...) or a 64-character hex hash
        target: String,
        /// Output file (blob) or folder (collection) [default: ./<hash>]
        #[arg(short, long, value_name = "PATH")]
        out: Option<PathBuf>,
    },

    /// List local content: hash, name, size, completeness, pin
    #[command(after_help = "Examples:
  weft ls
  weft ls --json")]
    Ls,

    /// Keep content: pinned content is never evicted by the quota
    #[command(after_help = "Example:
  weft pin 5f2b...e1")]
    Pin { hash: String },

    /// Let content be evicted again when the store is full
    #[command(after_help = "Example:
  weft unpin 5f2b...e1")]
    Unpin { hash: String },

    /// Remove content from the local store
    #[command(after_help = "Example:
  weft rm 5f2b...e1")]
    Rm { hash: String },

    /// Print a fresh ticket for content this node has
    #[command(after_help = "Example:
  weft ticket 5f2b...e1")]
    Ticket { hash: String },

    /// Open the node's web dashboard in a browser, logged in (prints its URL)
    #[command(after_help = "Examples:
  weft ui                     print the login URL and open it in the browser
  weft ui --no-open           only print http://127.0.0.1:4720/#token=...
  weft --data-dir /tmp/weft-a ui
The URL carries the API token: anyone who has it can use the node's API.")]
    Ui(crate::ui::UiArgs),

    /// Publish a message on an app topic (without MESSAGE, reads it from stdin)
    #[command(after_help = "Examples:
  weft pub chat.lobby 'hello, world'
  echo '{\"move\": \"e4\"}' | weft pub chess.game-42     stdin; one trailing newline is dropped
  weft pub chat.lobby hi --json      {\"id\": ..., \"topic\": ..., \"from\": ..., \"timestamp\": ...}
Topics are 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'; messages are at most 64 KiB.
Prints the message id.")]
    Pub {
        /// The topic
        topic: String,
        /// The message [default: read from stdin]
        message: Option<String>,
    },

    /// Print the messages on an app topic as they arrive, until Ctrl-C
    #[command(after_help = "Examples:
  weft sub chat.lobby              one line per message: <time> <author peer id> <message>
  weft sub chat.lobby --json       one JSON object per line: id, topic, from, timestamp, data
Only messages published after it starts are shown. Binary messages print as base64:...
(in JSON as data_base64).")]
    Sub {
        /// The topic
        topic: String,
    },

    #[command(flatten)]
    Ledger(crate::ledger::LedgerCommand),

    /// Web apps: folders of web files shared as content and served in their own origin
    #[command(subcommand)]
    App(crate::app::AppCommand),

    /// Run several connected nodes in one process, on loopback (for trying weft)
    #[command(after_help = "Examples:
  weft devnet                 five nodes in a new temporary folder
  weft devnet --nodes 3 --dir ./devnet
Then, in another terminal, use any node with its data dir:
  WEFT_DATA_DIR=./devnet/node-1 weft peers")]
    Devnet(DevnetArgs),
}

#[derive(Debug, Args)]
pub(crate) struct StartArgs {
    /// Address to listen on (repeatable) [default: QUIC and TCP on port 4719, all interfaces]
    #[arg(
        long,
        value_name = "MULTIADDR",
        env = "WEFT_LISTEN",
        value_delimiter = ','
    )]
    pub(crate) listen: Vec<String>,

    /// Peer to bootstrap from (repeatable); must end in /p2p/<peer id>
    #[arg(
        long,
        value_name = "MULTIADDR",
        env = "WEFT_BOOTSTRAP",
        value_delimiter = ','
    )]
    pub(crate) bootstrap: Vec<String>,

    /// Do not discover peers on the local network with mDNS
    #[arg(long, env = "WEFT_NO_MDNS")]
    pub(crate) no_mdns: bool,

    /// Network name; peers on other networks are disconnected [default: main]
    #[arg(long, value_name = "NAME", env = "WEFT_NETWORK")]
    pub(crate) network: Option<String>,

    /// Most peers connected at once [default: 64]
    #[arg(long, value_name = "N", env = "WEFT_MAX_PEERS")]
    pub(crate) max_peers: Option<u32>,

    /// DHT mode: server (answer queries), client, or auto (server once reachable) [default: server]
    #[arg(long, value_name = "MODE", env = "WEFT_DHT_MODE")]
    pub(crate) dht_mode: Option<String>,

    /// Most bytes the blob store keeps, e.g. 50G; least recently used unpinned content is evicted beyond it
    #[arg(long, value_name = "SIZE", env = "WEFT_STORE_MAX")]
    pub(crate) store_max: Option<String>,

    /// Genesis file of the ledger to run on (from `weft genesis new`) [default: the built-in genesis]
    #[arg(long, value_name = "FILE", env = "WEFT_GENESIS")]
    pub(crate) genesis: Option<PathBuf>,

    /// Mine blocks (rewards go to --miner, or to the default wallet)
    #[arg(long, env = "WEFT_MINE")]
    pub(crate) mine: bool,

    /// Address that receives mining rewards [default: the node's default wallet]
    #[arg(long, value_name = "ADDRESS", env = "WEFT_MINER")]
    pub(crate) miner: Option<String>,

    /// Threads that search for blocks [default: 1]
    #[arg(long, value_name = "N", env = "WEFT_MINE_THREADS")]
    pub(crate) mine_threads: Option<usize>,

    /// Test-only fault injection (corrupt-blobs): never use in production
    #[arg(long, value_name = "FAULT", env = "WEFT_TEST_FAULT", hide = true)]
    pub(crate) test_fault: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct DevnetArgs {
    /// Number of nodes
    #[arg(long, default_value_t = 5)]
    pub(crate) nodes: usize,

    /// Folder for the nodes' data dirs (node-0, node-1, ...) [default: a new temporary folder]
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,

    /// Network name [default: devnet-<random>]
    #[arg(long, value_name = "NAME")]
    pub(crate) network: Option<String>,
}

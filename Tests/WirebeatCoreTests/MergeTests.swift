import Testing
@testable import WirebeatCore

/// `ParallelReplay.Merge`, run by the workers as they hand over chunks: events out in key
/// order, each only once no other worker can have one before it, and nothing left behind
/// when two workers offer at once.
struct MergeTests {
    /// A chunk with an event for each of `packets` (its text: packet, worker).
    static func chunk(_ channel: HandOff<Chunk>, worker: Int, packets: [Int], watermark: Int, last: Bool = false) -> Chunk {
        let chunk = channel.fresh()
        for p in packets {
            chunk.buffer.append(Array("\(p).\(worker) ".utf8))
            chunk.appendRecord(key: EventOrderKey(packet: Int64(p), phase: 1, first: 0, second: 0), end: chunk.buffer.count)
        }
        chunk.watermark = last ? EventOrderKey.endOfInput : Int64(watermark)
        chunk.isLast = last
        return chunk
    }

    final class Output: @unchecked Sendable {
        var text = ""   // written only by the merge, one run at a time
    }

    @Test func anEventWaitsUntilNoOtherWorkerCanComeFirst() {
        let channels = [HandOff<Chunk>(), HandOff<Chunk>()]
        let out = Output()
        let merge = ParallelReplay.Merge(channels, write: { out.text += String(decoding: $0, as: UTF8.self) }, release: {})
        #expect(channels[0].put(Self.chunk(channels[0], worker: 0, packets: [1, 3, 5], watermark: 6), wait: false))
        merge.offer()
        #expect(out.text == "")  // worker 1 may still have an event before packet 1
        #expect(channels[1].put(Self.chunk(channels[1], worker: 1, packets: [2], watermark: 4), wait: false))
        merge.offer()
        #expect(out.text == "1.0 2.1 3.0 ")  // 5 waits: worker 1 is only known up to packet 4
        #expect(channels[1].put(Self.chunk(channels[1], worker: 1, packets: [5, 7], watermark: 0, last: true), wait: false))
        merge.offer()
        #expect(out.text == "1.0 2.1 3.0 5.0 5.1 ")  // equal keys: the lower worker's first; 7 waits for worker 0
        #expect(channels[0].put(Self.chunk(channels[0], worker: 0, packets: [], watermark: 0, last: true), wait: false))
        merge.offer()
        #expect(out.text == "1.0 2.1 3.0 5.0 5.1 7.1 ")
        #expect(merge.isFinished)
        merge.close()
    }

    /// The window a crossing offer can fall in, opened on purpose: worker 1 hands over its
    /// chunk and offers while worker 0 is between a run and taking the mutex again. That offer
    /// returns at once; worker 0 must go round again and write worker 1's event too.
    @Test func anOfferWhileAnotherWorkerRunsTheMergeIsServedByIt() {
        let channels = [HandOff<Chunk>(), HandOff<Chunk>()]
        let out = Output()
        let merge = ParallelReplay.Merge(channels, write: { out.text += String(decoding: $0, as: UTF8.self) }, release: {})
        var offeredMeanwhile = false
        merge.afterRun = {
            guard !offeredMeanwhile else { return }
            offeredMeanwhile = true
            #expect(out.text == "")  // packet 1 waits for worker 1
            #expect(channels[1].put(Self.chunk(channels[1], worker: 1, packets: [2], watermark: 0, last: true), wait: false))
            merge.offer()
            #expect(out.text == "")  // not run here: worker 0 is running it
        }
        #expect(channels[0].put(Self.chunk(channels[0], worker: 0, packets: [1, 3], watermark: 0, last: true), wait: false))
        merge.offer()
        #expect(offeredMeanwhile)
        #expect(out.text == "1.0 2.1 3.0 ")
        #expect(merge.isFinished)
        merge.close()
    }

    /// Two threads hand over chunks and offer at the same time, as workers do (a full queue
    /// first runs the merge, then waits): every event comes out once, in key order.
    @Test(arguments: 0..<16)
    func crossingOffersLeaveNothingBehind(_ trial: Int) {
        let packets = 3_000
        let channels = [HandOff<Chunk>(), HandOff<Chunk>()]
        let out = Output()
        let merge = ParallelReplay.Merge(channels, write: { out.text += String(decoding: $0, as: UTF8.self) }, release: {})
        var expected = ""
        for p in 1...packets where Self.hasEvent(p, trial) { expected += "\(p).\(p % 2) " }
        let threads = (0..<2).map { w in
            WorkerThread {
                var mine: [Int] = []
                for p in 1...packets {
                    if p % 2 == w && Self.hasEvent(p, trial) { mine.append(p) }
                    // Chunks of varying size, differently for each worker.
                    let last = p == packets
                    if last || (p &* 2_654_435_761 &+ w &* 40_503 &+ trial) % 37 == 0 {
                        let chunk = Self.chunk(channels[w], worker: w, packets: mine, watermark: p, last: last)
                        mine = []
                        if !channels[w].put(chunk, wait: false) {
                            merge.offer()
                            channels[w].put(chunk)
                        }
                        merge.offer()
                    }
                }
            }
        }
        for thread in threads { thread.join() }
        // The workers' last offers finished it: no offer was lost while the other ran it.
        #expect(merge.isFinished)
        #expect(out.text == expected)
        merge.close()
    }

    static func hasEvent(_ p: Int, _ trial: Int) -> Bool { (p &* 7 &+ trial) % 3 != 0 }
}

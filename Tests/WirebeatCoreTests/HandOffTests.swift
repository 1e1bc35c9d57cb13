import Foundation
import Testing
@testable import WirebeatCore

/// `HandOff`, the bounded queue between a parallel replay's threads: items arrive in order,
/// never more than `depth` wait, and a sender held up for room is let go again (it is woken
/// once half the items are taken, so a receiver that takes fewer must not strand it).
struct HandOffTests {
    final class Numbered: Reusable {
        var number = -1
        init() {}
        func reset() { number = -1 }
    }

    /// What the sender has put, read by the receiver under a lock of its own.
    final class Progress: @unchecked Sendable {
        private let lock = NSLock()
        private var sent = 0
        func didSend() { lock.withLock { sent += 1 } }
        var count: Int { lock.withLock { sent } }
    }

    @Test func itemsArriveInOrderAndAtMostDepthWait() {
        let channel = HandOff<Numbered>()
        let progress = Progress()
        let total = 500
        let sender = WorkerThread {
            for n in 0..<total {
                let item = channel.fresh()
                item.number = n
                channel.put(item)
                progress.didSend()
            }
        }
        var taken = 0
        var outOfOrder = 0
        var mostAhead = 0
        while taken < total {
            // A slow receiver now and then, so that the sender fills the queue and waits.
            if taken % 50 == 0 { usleep(2_000) }
            let item = channel.take()
            if item.number != taken { outOfOrder += 1 }
            taken += 1
            mostAhead = max(mostAhead, progress.count - taken)
            channel.recycle(item)
        }
        sender.join()
        #expect(outOfOrder == 0)
        #expect(progress.count == total)
        // Sent but not yet taken: at most the queue's depth (the one being taken is counted taken).
        #expect(mostAhead <= HandOff<Numbered>.depth)
        #expect(mostAhead > 0, "the sender never got ahead: the test did not fill the queue")
    }

    @Test func aFullQueueRefusesAnItemThatMayNotWait() {
        let channel = HandOff<Numbered>()
        for n in 0..<HandOff<Numbered>.depth {
            let item = channel.fresh()
            item.number = n
            #expect(channel.put(item, wait: false))
        }
        let extra = channel.fresh()
        extra.number = 99
        #expect(!channel.put(extra, wait: false))
        #expect(channel.take().number == 0)
        #expect(channel.put(extra, wait: false))
    }

    /// A sender waiting for room goes on once the receiver has taken half the queue, and
    /// its item comes after the others.
    @Test func aWaitingSenderGoesOnOnceHalfIsTaken() {
        let channel = HandOff<Numbered>()
        let depth = HandOff<Numbered>.depth
        for n in 0..<depth {
            let item = channel.fresh()
            item.number = n
            channel.put(item)
        }
        let progress = Progress()
        let sender = WorkerThread {
            let item = channel.fresh()
            item.number = depth
            channel.put(item)   // waits: the queue is full
            progress.didSend()
        }
        // Taken only once the sender waits for room (else it would find room and not wait).
        var waited = 0
        while channel.waitingSenders == 0 && waited < 10_000 {
            usleep(1_000)
            waited += 1
        }
        #expect(channel.waitingSenders == 1)
        var numbers: [Int] = []
        for _ in 0..<(depth / 2) { numbers.append(channel.take().number) }
        // Not a time limit on speed: a stranded sender would never get there (10 s of grace).
        waited = 0
        while progress.count == 0 && waited < 10_000 {
            usleep(1_000)
            waited += 1
        }
        #expect(progress.count == 1, "the sender was not let go after half the queue was taken")
        while numbers.count < depth + 1 { numbers.append(channel.take().number) }
        sender.join()
        #expect(numbers == Array(0...depth))
    }
}
